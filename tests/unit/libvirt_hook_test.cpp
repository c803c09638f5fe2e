// The libvirt hook's decision (agent/hook): every row of the table in
// docs/operations.md ("Cordon: the libvirt hook"), the cordon file's format,
// the domain XML's <uuid>, the command line, and the bounded file read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cordon.hpp"
#include "cordon_file.hpp"
#include "invocation.hpp"

namespace hostmaint::hook {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPath = "/var/lib/hostmaint/cordon.json";
constexpr const char* kWeb3Uuid = "6f2d3c8e-0000-4000-8000-000000000003";

// The example of the issue: hm-lab-a draining, web1 allowed by the admin,
// web2 being restored by hostmaintd.
const char* const kCordoned = R"({
  "format": 1, "host": "hm-lab-a", "cordoned": true, "session_id": "abc", "phase": "draining",
  "since": "2026-12-01T10:00:00Z", "window_start": "2026-12-01T10:00:00Z",
  "window_end": "2026-12-01T12:00:00Z", "reason": "kernel update",
  "allowed": [ {"domain": "web1", "reason": "debugging", "by": "uid 0", "at": "2026-12-01T10:05:00Z"} ],
  "restoring": [ {"name": "web2", "uuid": "6F2D3C8E-0000-4000-8000-000000000002"} ],
  "written_at": "2026-12-01T10:05:00Z" })";

CordonFileRead readText(const std::string& text) { return {CordonFileRead::State::read, text, {}}; }

HookVerdict start(const std::string& name, const CordonFileRead& file,
                  const std::string& uuid = "") {
  return decide(GuardedOperation::start, HookDomain{name, uuid}, kPath, file);
}

// --- the decision table -----------------------------------------------------

TEST(HookDecision, MissingFileAllows) {
  const HookVerdict verdict = start("web3", CordonFileRead{});
  EXPECT_TRUE(verdict.allowed);
  EXPECT_EQ(verdict.exitStatus(), 0);
  EXPECT_EQ(verdict.message, "");
}

TEST(HookDecision, UnreadableFileRefusesNamingPathErrorAndFix) {
  const HookVerdict verdict =
      start("web3", CordonFileRead{CordonFileRead::State::unreadable, {}, "not a regular file"});
  EXPECT_FALSE(verdict.allowed);
  EXPECT_EQ(verdict.exitStatus(), 1);
  EXPECT_EQ(verdict.message,
            "hostmaint: cannot use the cordon file /var/lib/hostmaint/cordon.json (not a regular "
            "file); starting domain 'web3' here is refused, since this host may be in "
            "maintenance. Check with hostmaintctl status; if hostmaint is no longer used on this "
            "host, remove /var/lib/hostmaint/cordon.json");
}

TEST(HookDecision, InvalidJsonRefuses) {
  const HookVerdict verdict = start("web3", readText("{\"format\": 1, \"cordoned\": tru"));
  EXPECT_FALSE(verdict.allowed);
  EXPECT_NE(verdict.message.find("cannot use the cordon file /var/lib/hostmaint/cordon.json "
                                 "(invalid JSON: parse error at line 1"),
            std::string::npos)
      << verdict.message;
  EXPECT_EQ(verdict.message.find("json.exception"), std::string::npos) << verdict.message;
}

TEST(HookDecision, EmptyFileRefuses) {
  // hostmaintd replaces the file atomically: empty is never a moment of writing.
  EXPECT_FALSE(start("web3", readText("")).allowed);
}

TEST(HookDecision, WrongTypesRefuse) {
  for (const char* text : {
           R"({"format": 1, "cordoned": "yes"})",
           R"({"format": "1", "cordoned": false})",
           R"({"format": 1, "cordoned": true, "host": 7})",
           R"({"format": 1, "cordoned": true, "allowed": {"domain": "web3"}})",
           R"({"format": 1, "cordoned": true, "allowed": ["web3"]})",
           R"({"format": 1, "cordoned": true, "allowed": [{"domain": 3}]})",
           R"({"format": 1, "cordoned": true, "restoring": [{"name": "web3", "uuid": false}]})",
           R"([1, 2])",
       }) {
    const HookVerdict verdict = start("web3", readText(text));
    EXPECT_FALSE(verdict.allowed) << text;
    EXPECT_NE(verdict.message.find("cannot use the cordon file"), std::string::npos) << text;
  }
}

TEST(HookDecision, WrongTypeIsRefusedEvenWhenNotCordoned) {
  // A file this hook misreads in one key may be misread in others.
  EXPECT_FALSE(start("web3", readText(R"({"format": 1, "cordoned": false, "phase": 2})")).allowed);
}

TEST(HookDecision, NewerFormatRefuses) {
  const HookVerdict verdict = start("web3", readText(R"({"format": 2, "cordoned": false})"));
  EXPECT_FALSE(verdict.allowed);
  EXPECT_NE(verdict.message.find("(format 2 is newer than this hook understands (1): update "
                                 "hostmaint)"),
            std::string::npos)
      << verdict.message;
}

TEST(HookDecision, MissingFormatOrCordonedRefuses) {
  EXPECT_FALSE(start("web3", readText(R"({"cordoned": false})")).allowed);
  EXPECT_FALSE(start("web3", readText(R"({"format": 1})")).allowed);
  EXPECT_FALSE(start("web3", readText(R"({"format": 0, "cordoned": false})")).allowed);
}

TEST(HookDecision, NotCordonedAllows) {
  const HookVerdict verdict = start("web3", readText(R"({"format": 1, "cordoned": false})"));
  EXPECT_TRUE(verdict.allowed);
  EXPECT_EQ(verdict.message, "");
}

TEST(HookDecision, UnknownKeysAndNullsAreIgnored) {
  const char* text = R"({"format": 1, "cordoned": false, "host": null, "future": {"x": [1]},
                         "allowed": null})";
  EXPECT_TRUE(start("web3", readText(text)).allowed);
}

TEST(HookDecision, CordonedRefusesAnyOtherDomainWithTheWayOut) {
  const HookVerdict verdict = start("web3", readText(kCordoned), kWeb3Uuid);
  EXPECT_FALSE(verdict.allowed);
  EXPECT_EQ(verdict.exitStatus(), 1);
  EXPECT_EQ(verdict.message,
            "hostmaint: host hm-lab-a is cordoned for maintenance (session abc, phase draining, "
            "window 2026-12-01T10:00:00Z \u2013 12:00:00Z: kernel update); starting domain 'web3' "
            "here is refused. To allow this domain anyway: hostmaintctl allow web3 --reason TEXT "
            "(as root)");
}

TEST(HookDecision, CordonedRefusesAnIncomingMigrationInItsOwnWords) {
  const HookVerdict verdict =
      decide(GuardedOperation::migrate_in, HookDomain{"web3", ""}, kPath, readText(kCordoned));
  EXPECT_FALSE(verdict.allowed);
  EXPECT_NE(verdict.message.find("; migrating domain 'web3' into this host is refused."),
            std::string::npos)
      << verdict.message;
}

TEST(HookDecision, AllowedDomainPassesByName) {
  EXPECT_TRUE(start("web1", readText(kCordoned)).allowed);
  EXPECT_TRUE(
      decide(GuardedOperation::migrate_in, HookDomain{"web1", ""}, kPath, readText(kCordoned))
          .allowed);
}

TEST(HookDecision, RestoringDomainPassesByNameOrUuid) {
  EXPECT_TRUE(start("web2", readText(kCordoned)).allowed);
  // Renamed meanwhile, same domain: the UUID decides, in any case.
  EXPECT_TRUE(
      start("web2-renamed", readText(kCordoned), "6f2d3c8e-0000-4000-8000-000000000002").allowed);
}

TEST(HookDecision, AllowedDomainPassesByUuid) {
  const char* text = R"({"format": 1, "cordoned": true,
                         "allowed": [{"domain": "old-name", "uuid": "6f2d3c8e-0000-4000-8000-000000000003"}]})";
  EXPECT_TRUE(start("web3", readText(text), kWeb3Uuid).allowed);
  EXPECT_FALSE(start("web3", readText(text), "").allowed);
  EXPECT_FALSE(start("web4", readText(text), "6f2d3c8e-0000-4000-8000-000000000004").allowed);
}

TEST(HookDecision, NameMatchIsExactAndEmptyMatchesNothing) {
  const char* text = R"({"format": 1, "cordoned": true,
                         "allowed": [{"uuid": ""}, {"domain": ""}, {"domain": "Web3"}]})";
  EXPECT_FALSE(start("web3", readText(text)).allowed);
  EXPECT_FALSE(start("", readText(text)).allowed);
}

TEST(HookDecision, MessageWithoutDetailsStaysOneSentence) {
  const HookVerdict verdict = start("web3", readText(R"({"format": 1, "cordoned": true})"));
  EXPECT_EQ(
      verdict.message,
      "hostmaint: this host is cordoned for maintenance; starting domain 'web3' here is "
      "refused. To allow this domain anyway: hostmaintctl allow web3 --reason TEXT (as root)");
}

TEST(HookDecision, WindowOverDaysKeepsTheEndDate) {
  const char* text = R"({"format": 1, "cordoned": true, "window_start": "2026-12-01T22:00:00Z",
                         "window_end": "2026-12-02T02:00:00Z"})";
  EXPECT_NE(start("web3", readText(text))
                .message.find("(window 2026-12-01T22:00:00Z \u2013 2026-12-02T02:00:00Z)"),
            std::string::npos);
}

TEST(HookDecision, ControlCharactersFromFileAndNameAreStripped) {
  const char* text = R"({"format": 1, "cordoned": true, "host": "hm\u001b[31m-a",
                         "reason": "line\nbreak\u0085", "session_id": "s\u0007"})";
  const HookVerdict verdict = start(
      "we\tb\x01"
      "3",
      readText(text));
  EXPECT_EQ(verdict.message,
            "hostmaint: host hm[31m-a is cordoned for maintenance (session s: linebreak); "
            "starting domain 'web3' here is refused. To allow this domain anyway: hostmaintctl "
            "allow web3 --reason TEXT (as root)");
  EXPECT_EQ(verdict.message.find('\n'), std::string::npos);
}

TEST(HookDecision, NameThatIsNotOneShellWordIsQuoted) {
  const HookVerdict verdict = start("it's a vm", readText(R"({"format": 1, "cordoned": true})"));
  EXPECT_NE(verdict.message.find("hostmaintctl allow 'it'\\''s a vm' --reason TEXT"),
            std::string::npos)
      << verdict.message;
  EXPECT_NE(start("-x", readText(R"({"format": 1, "cordoned": true})")).message.find("allow '-x' "),
            std::string::npos);
}

TEST(HookDecision, ParsesEveryFieldItUses) {
  const auto parsed = parseCordon(kCordoned);
  ASSERT_TRUE(std::holds_alternative<Cordon>(parsed)) << std::get<std::string>(parsed);
  const Cordon& cordon = std::get<Cordon>(parsed);
  EXPECT_TRUE(cordon.cordoned);
  EXPECT_EQ(cordon.host, "hm-lab-a");
  EXPECT_EQ(cordon.session_id, "abc");
  EXPECT_EQ(cordon.phase, "draining");
  EXPECT_EQ(cordon.window_start, "2026-12-01T10:00:00Z");
  EXPECT_EQ(cordon.window_end, "2026-12-01T12:00:00Z");
  EXPECT_EQ(cordon.reason, "kernel update");
  EXPECT_EQ(cordon.allowed, (std::vector<CordonException>{{"web1", ""}}));
  EXPECT_EQ(cordon.restoring,
            (std::vector<CordonException>{{"web2", "6F2D3C8E-0000-4000-8000-000000000002"}}));
}

TEST(HookDecision, ProblemsNameTheKey) {
  EXPECT_EQ(std::get<std::string>(parseCordon(R"({"format": 1, "cordoned": 1})")),
            "'cordoned' must be a boolean, not number");
  EXPECT_EQ(std::get<std::string>(
                parseCordon(R"({"format": 1, "cordoned": true, "restoring": [{}, {"name": []}]})")),
            "restoring[1]: 'name' must be a string, not array");
}

// --- which operations are decided -------------------------------------------

TEST(HookOperations, OnlyPrepareBeginAndMigrateBegin) {
  EXPECT_EQ(guardedOperation("prepare", "begin"), GuardedOperation::start);
  EXPECT_EQ(guardedOperation("migrate", "begin"), GuardedOperation::migrate_in);
  for (const auto& [operation, sub] :
       std::vector<std::pair<std::string, std::string>>{{"start", "begin"},
                                                        {"started", "begin"},
                                                        {"prepare", "end"},
                                                        {"stopped", "end"},
                                                        {"release", "end"},
                                                        {"reconnect", "begin"},
                                                        {"attach", "begin"},
                                                        {"restore", "begin"},
                                                        {"migrate", "-"},
                                                        {"", ""}}) {
    EXPECT_EQ(guardedOperation(operation, sub), std::nullopt) << operation << " " << sub;
  }
}

// --- the domain XML's <uuid> ------------------------------------------------

TEST(HookDomainXml, TakesTheTopLevelUuid) {
  const std::string xml =
      "<?xml version='1.0'?>\n<!-- a comment with "
      "<uuid>00000000-0000-0000-0000-000000000000</uuid> -->\n"
      "<domain type='kvm' id='3'>\n  <name>web3</name>\n"
      "  <uuid> 6f2d3c8e-0000-4000-8000-000000000003 </uuid>\n  <memory "
      "unit='KiB'>524288</memory>\n"
      "</domain>\n";
  EXPECT_EQ(domainUuidFromXml(xml), kWeb3Uuid);
}

TEST(HookDomainXml, IgnoresNestedUuidsAndOtherRoots) {
  // A <uuid> inside <metadata> (or anywhere deeper) is not the domain's.
  const std::string nested =
      "<domain type='kvm'><name>a</name><metadata><app><uuid>11111111-1111-1111-1111-111111111111"
      "</uuid></app></metadata><devices "
      "attr='x>y'/><uuid>22222222-2222-2222-2222-222222222222</uuid>"
      "</domain>";
  EXPECT_EQ(domainUuidFromXml(nested), "22222222-2222-2222-2222-222222222222");
  EXPECT_EQ(
      domainUuidFromXml("<network><uuid>22222222-2222-2222-2222-222222222222</uuid></network>"),
      "");
  EXPECT_EQ(domainUuidFromXml("<domain><name>a</name></domain><uuid>2222</uuid>"), "");
}

TEST(HookDomainXml, EmptyTruncatedOrImplausibleGivesNothing) {
  EXPECT_EQ(domainUuidFromXml(""), "");
  EXPECT_EQ(domainUuidFromXml("<domain><name>a</name><uu"), "");
  EXPECT_EQ(domainUuidFromXml("<domain><uuid>6f2d3c8e-0000-4000-8000-00000000"), "");
  EXPECT_EQ(domainUuidFromXml("<domain><uuid>not\x1b-a-uuid</uuid></domain>"), "");
  EXPECT_EQ(domainUuidFromXml("<domain><uuid/><uuid>6f2d3c8e-0000-4000-8000-000000000003</uuid>"),
            kWeb3Uuid);
}

TEST(HookDomainXml, LooksNoFurtherThanTheLimit) {
  const std::string xml = "<domain><name>a</name><uuid>6f2d3c8e-0000-4000-8000-000000000003</uuid>";
  EXPECT_EQ(domainUuidFromXml(xml, xml.size()), kWeb3Uuid);
  EXPECT_EQ(domainUuidFromXml(xml, 30), "");
}

// --- the command line ---------------------------------------------------------

HookInvocation invoke(std::vector<std::string_view> arguments) {
  return parseInvocation(arguments);
}

TEST(HookInvocation, LibvirtsFourArgumentsWithTheDefaultFile) {
  const HookInvocation invocation = invoke({"web3", "prepare", "begin", "-"});
  EXPECT_EQ(invocation.kind, HookInvocation::Kind::decide);
  EXPECT_EQ(invocation.domain, "web3");
  EXPECT_EQ(invocation.operation, GuardedOperation::start);
  EXPECT_EQ(invocation.cordon_file, "/var/lib/hostmaint/cordon.json");
  EXPECT_EQ(invoke({"web3", "migrate", "begin"}).operation, GuardedOperation::migrate_in);
}

TEST(HookInvocation, CordonFileOptionInBothForms) {
  EXPECT_EQ(invoke({"--cordon-file", "/tmp/c.json", "web3", "prepare", "begin", "-"}).cordon_file,
            "/tmp/c.json");
  const HookInvocation joined =
      invoke({"--cordon-file=/tmp/c.json", "--", "web3", "prepare", "begin", "-"});
  EXPECT_EQ(joined.kind, HookInvocation::Kind::decide);
  EXPECT_EQ(joined.cordon_file, "/tmp/c.json");
  EXPECT_EQ(joined.domain, "web3");
  EXPECT_EQ(invoke({"--cordon-file=", "web3", "prepare", "begin", "-"}).kind,
            HookInvocation::Kind::usage_error);
}

TEST(HookInvocation, DomainNamedLikeAnOptionIsADomain) {
  const HookInvocation invocation = invoke({"--cordon-file", "prepare", "begin", "-"});
  EXPECT_EQ(invocation.kind, HookInvocation::Kind::decide);
  EXPECT_EQ(invocation.domain, "--cordon-file");
  EXPECT_EQ(invocation.cordon_file, "/var/lib/hostmaint/cordon.json");
  EXPECT_EQ(invoke({"--", "prepare", "begin", "-"}).domain, "--");
  EXPECT_EQ(invoke({"--help", "prepare", "begin", "-"}).domain, "--help");
  EXPECT_EQ(invoke({"--cordon-file=x", "migrate", "begin", "-"}).domain, "--cordon-file=x");
  // A wrapper's option in front of three arguments is still an option.
  const HookInvocation wrapped = invoke({"--cordon-file=/tmp/c.json", "web3", "prepare", "begin"});
  EXPECT_EQ(wrapped.domain, "web3");
  EXPECT_EQ(wrapped.cordon_file, "/tmp/c.json");
}

TEST(HookInvocation, OtherOperationsPassWhateverFollows) {
  EXPECT_EQ(invoke({"web3", "release", "end", "-"}).kind, HookInvocation::Kind::pass);
  EXPECT_EQ(invoke({"web3", "started", "begin", "-", "more", "args"}).kind,
            HookInvocation::Kind::pass);
  EXPECT_EQ(invoke({"web3", "prepare", "end"}).kind, HookInvocation::Kind::pass);
}

TEST(HookInvocation, UsageErrors) {
  EXPECT_EQ(invoke({}).kind, HookInvocation::Kind::usage_error);
  EXPECT_EQ(invoke({"web3", "prepare"}).error,
            "expected DOMAIN OPERATION SUBOP [EXTRA], got 2 arguments");
  EXPECT_EQ(invoke({"web3", "prepare", "begin", "-", "extra"}).kind,
            HookInvocation::Kind::usage_error);
  // A mistyped option in a wrapper must not let everything through.
  const HookInvocation typo = invoke({"--cordonfile=/tmp/c.json", "web3", "release", "end", "-"});
  EXPECT_EQ(typo.kind, HookInvocation::Kind::usage_error);
  EXPECT_NE(typo.error.find("unknown option '--cordonfile=/tmp/c.json'"), std::string::npos);
  EXPECT_EQ(invoke({"--help"}).kind, HookInvocation::Kind::help);
}

// --- the bounded reads ---------------------------------------------------------

class CordonFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "hostmaint-hook-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir = pattern;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir / name;
    std::ofstream(path) << text;
    return path.string();
  }

  fs::path dir;
};

TEST_F(CordonFileTest, ReadsARegularFile) {
  const CordonFileRead read = readCordonFile(write("cordon.json", kCordoned));
  EXPECT_EQ(read.state, CordonFileRead::State::read);
  EXPECT_EQ(read.contents, kCordoned);
}

TEST_F(CordonFileTest, MissingIsMissing) {
  EXPECT_EQ(readCordonFile((dir / "cordon.json").string()).state, CordonFileRead::State::missing);
  EXPECT_EQ(readCordonFile((dir / "no-such-dir" / "cordon.json").string()).state,
            CordonFileRead::State::missing);
}

TEST_F(CordonFileTest, DirectoryFifoAndNotADirectoryAreUnreadable) {
  fs::create_directory(dir / "cordon.json");
  const CordonFileRead directory = readCordonFile((dir / "cordon.json").string());
  EXPECT_EQ(directory.state, CordonFileRead::State::unreadable);
  EXPECT_EQ(directory.error, "not a regular file");

  // Without O_NONBLOCK, opening a FIFO nobody writes to would hang the hook.
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_EQ(readCordonFile((dir / "fifo").string()).error, "not a regular file");

  const std::string file = write("file", "x");
  const CordonFileRead below_file = readCordonFile(file + "/cordon.json");
  EXPECT_EQ(below_file.state, CordonFileRead::State::unreadable);
  EXPECT_EQ(below_file.error, "Not a directory");
}

TEST_F(CordonFileTest, LargerThanOneMebibyteIsUnreadable) {
  const std::string path = write("cordon.json", std::string(kMaxCordonFileBytes + 1, ' '));
  const CordonFileRead read = readCordonFile(path);
  EXPECT_EQ(read.state, CordonFileRead::State::unreadable);
  EXPECT_EQ(read.error, "larger than 1048576 bytes");
  fs::resize_file(path, kMaxCordonFileBytes);
  EXPECT_EQ(readCordonFile(path).state, CordonFileRead::State::read);
}

TEST_F(CordonFileTest, DrainReadsToTheEndAndKeepsTheBeginning) {
  const std::string path = write("input", std::string(200000, 'x') + "end");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(drainInput(fd, 10, 1 << 20), std::string(10, 'x'));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 200003);  // everything read
  ::lseek(fd, 0, SEEK_SET);
  drainInput(fd, 10, 100000);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 100000);  // but no more than the bound
  ::close(fd);
}

}  // namespace
}  // namespace hostmaint::hook
