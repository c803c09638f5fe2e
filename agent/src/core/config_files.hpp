// Reading hostmaintd.conf and its drop-in directory from disk, with errors
// that name the file and why it cannot be read.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hostmaint::agent::config_files {

// The file's text; nullopt when it does not exist and that is allowed.
// Throws ConfigError for anything else that keeps it from being read.
std::optional<std::string> readFile(const std::filesystem::path& path, bool missing_ok);

// The *.conf files of `directory` in name order (none when it does not
// exist). Throws ConfigError for one that cannot be read as a file.
std::vector<std::filesystem::path> dropInFiles(const std::filesystem::path& directory);

}  // namespace hostmaint::agent::config_files
