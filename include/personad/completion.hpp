// `personactl completion bash|zsh|fish`: shell completion scripts generated from CLI11's
// command tree, the one definition of personactl's commands and flags. Subcommands, their
// flags, state names for --state, files where a file is named, and job keys where a KEY is
// named (bash and fish ask `personactl list --keys-only`, which reads the database or the
// daemon; zsh too).
#pragma once

#include <CLI/App.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace personad {

enum class Shell { bash, zsh, fish };
std::optional<Shell> parse_shell(std::string_view name);

// The script for `shell`, for the program `app` describes (its name is app.get_name()).
std::string completion_script(const CLI::App& app, Shell shell);

}  // namespace personad
