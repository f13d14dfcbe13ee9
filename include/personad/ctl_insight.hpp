// personactl's insight commands (issue 9): `report` and `audit`. Each reads the database itself (read-only,
// safe beside a running daemon: WAL readers never block it), like the query side does offline.
#pragma once

#include <string>
#include <vector>

#include "personad/ctl.hpp"
#include "personad/report.hpp"
#include "personad/selection.hpp"
#include "personad/store.hpp"

namespace personad::ctl {

// The jobs of a selection with their histories and the selection's estimate, read from `store`
// (every matching job unless the selection has a limit; `more`: matching jobs left out).
Result<ReportInput> gather_report(const Store& store, const Selection& selection, TimePoint now,
                                  Millis stuck_after);

// `report [filters] --html FILE [--svg FILE]`: writes the files (each replaced whole: written
// beside, then renamed). Exit 0; 2 bad usage (no file named, a bad filter); 1 the database
// cannot be read or a file written.
int report(const Context& ctx, const std::vector<SelectionParam>& selection,
           const std::string& html_file, const std::string& svg_file);

// `audit [--json]`: lists the API's personas (api.list_path, with the configured credentials)
// and compares them with the jobs in the database (read-only): personas with a personad label
// no job holds, jobs whose persona is no longer listed, personas created outside personad.
// Exit 0; 1 when the API or the database cannot be read.
int audit(const Context& ctx, bool as_json);

// `archive --before T --to FILE` (archive.hpp): T is RFC 3339 or a duration back from now.
// Exit 0; 2 bad usage; 1 the database or FILE failed (nothing dropped).
int archive(const Context& ctx, const std::string& before, const std::string& file);

}  // namespace personad::ctl
