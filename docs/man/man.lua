-- pandoc Lua filter: builds a man page from a small header (docs/man/*.md:
-- NAME, SEE ALSO, sometimes SYNOPSIS) and the docs page it names in its
-- `docs-page:` metadata, so the page's text has one source: the docs page.
--
--   pandoc -s -t man --lua-filter man.lua hostmaintctl.8.md -o hostmaintctl.8
--
-- The page is: the header's sections except SEE ALSO; SYNOPSIS, when the header
-- has none, from the first code block before the body's first `##` heading;
-- DESCRIPTION, the rest of the text before that heading; every body section,
-- one heading level up (the body's `#` title is dropped, `title:` names the
-- page); then SEE ALSO. Links and mentions of other docs pages become what
-- exists on an installed system: a man page or /usr/share/doc/hostmaint/<page>.

local MAN_PAGES = {
  ["hostmaintd.md"] = "hostmaintd(8)",
  ["hostmaintctl.md"] = "hostmaintctl(8)",
  ["configuration.md"] = "hostmaintd.conf(5)",
}
local DOC_DIR = "/usr/share/doc/hostmaint/"

-- "status-json.md" -> "/usr/share/doc/hostmaint/status-json.md", or a man page.
local function installed_name(page)
  return MAN_PAGES[page] or (DOC_DIR .. page)
end

-- A link target inside the repository, as installed; nil for anything else.
local function installed_target(target)
  if target:match("^%a[%w+.-]*:") or target:match("^#") then return nil end
  target = target:gsub("#.*$", "")
  if target:match("hostmaintd%.conf$") then return "/etc/hostmaint/hostmaintd.conf" end
  local page = target:match("([%w_-]+%.md)$")
  if page then return installed_name(page) end
  return nil
end

local function rewrite_text(text)
  return (text:gsub("docs/([%w_-]+%.md)", installed_name))
end

-- The inlines of a table cell (its blocks are one Plain as a rule).
local function cell_inlines(blocks)
  local inlines = pandoc.List()
  for i, block in ipairs(blocks) do
    if i > 1 then inlines:insert(pandoc.Space()) end
    if block.content then inlines:extend(block.content) end
  end
  return inlines
end

-- A table becomes a list of tagged paragraphs, the man page's own form
-- (.TP): the first column is the tag; the middle ones follow as "header:
-- value" pairs, then the last column. tbl would lay the docs' wide tables out
-- in columns too narrow for their names and warn about the lines it cannot fill.
local function table_to_list(tbl)
  local simple = pandoc.utils.to_simple_table(tbl)
  local headers = simple.headers
  local items = pandoc.List()
  for _, row in ipairs(simple.rows) do
    local definition = pandoc.List()
    if #row > 2 then
      local pairs_line = pandoc.List()
      for column = 2, #row - 1 do
        if column > 2 then pairs_line:extend({pandoc.Str(";"), pandoc.Space()}) end
        pairs_line:extend({pandoc.Str(pandoc.utils.stringify(headers[column]) .. ":"),
                           pandoc.Space()})
        pairs_line:extend(cell_inlines(row[column]))
      end
      definition:insert(pandoc.Para(pairs_line))
    end
    if #row > 1 then definition:insert(pandoc.Para(cell_inlines(row[#row]))) end
    items:insert({cell_inlines(row[1]), {definition}})
  end
  return pandoc.DefinitionList(items)
end

local rewrite = {
  Table = table_to_list,
  Link = function(link)
    local target = installed_target(link.target)
    if not target then return nil end
    local text = pandoc.utils.stringify(link.content)
    local page = link.target:gsub("#.*$", ""):match("([^/]+)$")
    if text == page or text == target or text == link.target then
      return pandoc.Code(target)
    end
    local inlines = link.content
    inlines:insert(pandoc.Str(" ("))
    inlines:insert(pandoc.Code(target))
    inlines:insert(pandoc.Str(")"))
    return inlines
  end,
  Str = function(str) str.text = rewrite_text(str.text); return str end,
  Code = function(code) code.text = rewrite_text(code.text); return code end,
  CodeBlock = function(block) block.text = rewrite_text(block.text); return block end,
}

local function read_body(path)
  local file = io.open(path, "r")
  if not file then error("man.lua: cannot read the body page " .. path) end
  local text = file:read("a")
  file:close()
  return pandoc.read(text, "gfm").blocks
end

local function heading_text(block)
  return pandoc.utils.stringify(block.content):upper()
end

function Pandoc(doc)
  local body_name = doc.meta["docs-page"] and pandoc.utils.stringify(doc.meta["docs-page"])
  if not body_name then error("man.lua: the header names no body page (docs-page: metadata)") end
  local input = PANDOC_STATE.input_files[1]
  local dir = input:match("^(.*)/[^/]*$") or "."
  local body = read_body(dir .. "/" .. body_name)

  -- The header's sections: SEE ALSO goes last, the others first.
  local head, see_also, has_synopsis = pandoc.List(), pandoc.List(), false
  local target = head
  for _, block in ipairs(doc.blocks) do
    if block.t == "Header" and block.level == 1 then
      local name = heading_text(block)
      target = (name == "SEE ALSO") and see_also or head
      if name == "SYNOPSIS" then has_synopsis = true end
    end
    target:insert(block)
  end

  -- The body: intro (before the first ## heading) and sections one level up.
  local synopsis, description, sections = pandoc.List(), pandoc.List(), pandoc.List()
  local in_intro = true
  for _, block in ipairs(body) do
    if block.t == "Header" and block.level == 1 then
      -- The page title: the header's `title:` replaces it.
    elseif block.t == "Header" then
      in_intro = false
      if block.level == 2 then
        -- A man page's sections are named in capitals (NAME, SYNOPSIS, ...).
        sections:insert(pandoc.Header(1, heading_text(block)))
      else
        block.level = block.level - 1
        sections:insert(block)
      end
    elseif in_intro then
      if block.t == "CodeBlock" and not has_synopsis and #synopsis == 0 then
        synopsis:insert(block)
      else
        description:insert(block)
      end
    else
      sections:insert(block)
    end
  end

  local blocks = pandoc.List(head)
  if #synopsis > 0 then
    blocks:insert(pandoc.Header(1, "SYNOPSIS"))
    blocks:extend(synopsis)
  end
  if #description > 0 then
    blocks:insert(pandoc.Header(1, "DESCRIPTION"))
    blocks:extend(description)
  end
  blocks:extend(sections)
  blocks:extend(see_also)
  doc.blocks = blocks
  return doc:walk(rewrite)
end
