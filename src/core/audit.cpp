// The audit's findings (see audit.hpp).
#include "personad/audit.hpp"

#include <boost/json.hpp>
#include <set>

#include "personad/job_json.hpp"

namespace personad {

namespace json = boost::json;

namespace {

constexpr std::string_view kLabelPrefix = "personad:";

std::string personad_label(const RemotePersona& p) {
  for (const auto& l : p.labels)
    if (l.rfind(kLabelPrefix, 0) == 0) return l;
  return {};
}

}  // namespace

AuditFindings audit(const std::vector<RemotePersona>& listed, const std::vector<Job>& jobs) {
  AuditFindings f;
  f.listed = listed.size();
  std::set<std::string> refs, ids, seen;
  for (const Job& j : jobs) {
    refs.insert(j.client_ref);
    if (j.remote_id) ids.insert(*j.remote_id);
  }
  bool any_labels = listed.empty();
  for (const RemotePersona& p : listed) {
    seen.insert(p.id);
    any_labels = any_labels || p.has_labels;
    if (ids.count(p.id)) continue;
    const std::string label = personad_label(p);
    if (label.empty()) {
      ++f.outside;
    } else if (!refs.count(label.substr(kLabelPrefix.size()))) {
      f.orphans.push_back(p);
    }
  }
  f.labels_listed = any_labels;
  for (const Job& j : jobs)
    if (j.remote_id && !seen.count(*j.remote_id)) f.missing.push_back(j);
  return f;
}

json::object audit_to_json(const AuditFindings& f) {
  json::array orphans, missing;
  for (const auto& p : f.orphans)
    orphans.push_back(json::object{
        {"id", p.id},
        {"label", personad_label(p)},
        {"process_status", p.process_status},
        {"created_at", p.created_at ? json::value(format_rfc3339(*p.created_at)) : json::value(nullptr)}});
  for (const auto& j : f.missing)
    missing.push_back(json::object{
        {"key", j.key}, {"state", to_string(j.state)}, {"remote_id", j.remote_id.value_or("")}});
  json::object o{{"listed", f.listed},
                 {"orphans", std::move(orphans)},
                 {"missing", std::move(missing)},
                 {"outside_personad", f.outside},
                 {"labels_listed", f.labels_listed}};
  make_valid_utf8(o);
  return o;
}

std::string audit_text(const AuditFindings& f) {
  std::string o = std::to_string(f.listed) + " personas listed by the API\n";
  o += std::to_string(f.orphans.size()) + " carry a personad label no job holds\n";
  for (const auto& p : f.orphans)
    o += "  orphan " + p.id + " " + personad_label(p) + " " + p.process_status + "\n";
  o += std::to_string(f.missing.size()) + " jobs hold a persona the API no longer lists\n";
  for (const auto& j : f.missing)
    o += "  missing " + j.key + " " + std::string(to_string(j.state)) + " " +
         j.remote_id.value_or("") + "\n";
  o += std::to_string(f.outside) + " personas were created outside personad\n";
  if (!f.labels_listed)
    o += "note: the listing carries no labels; orphans cannot be told from personas created "
         "outside personad\n";
  return o;
}

}  // namespace personad
