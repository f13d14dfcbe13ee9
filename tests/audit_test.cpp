// `personactl audit` (audit.hpp): orphans (a personad label no job holds), jobs whose persona is
// no longer listed, personas created outside personad; and what it says without labels.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "personad/audit.hpp"

namespace personad {
namespace {

using ::testing::HasSubstr;

RemotePersona persona(std::string id, std::vector<std::string> labels) {
  RemotePersona p;
  p.id = std::move(id);
  p.process_status = "done";
  p.has_labels = true;
  p.labels = std::move(labels);
  return p;
}

Job job(std::string key, std::string ref, std::optional<std::string> remote_id, State s) {
  Job j;
  j.key = std::move(key);
  j.client_ref = std::move(ref);
  j.remote_id = std::move(remote_id);
  j.state = s;
  return j;
}

TEST(Audit, FindsOrphansMissingPersonasAndOutsideOnes) {
  const std::vector<RemotePersona> listed = {
      persona("r1", {"acme", "personad:ref-1"}),   // held by job a (id and label)
      persona("r2", {"personad:ref-2"}),           // held by job b's label (not adopted yet)
      persona("r9", {"acme", "personad:ref-9"}),   // nobody's: an orphan
      persona("x1", {"made-in-the-web-app"}),      // outside personad
      persona("x2", {}),                           // outside personad
      persona("r5", {"personad:old-ref"}),         // held by id: job e, resubmitted under a new ref
  };
  const std::vector<Job> jobs = {
      job("a", "ref-1", "r1", State::done), job("b", "ref-2", std::nullopt, State::submitting),
      job("c", "ref-3", "gone", State::pending), job("d", "ref-4", std::nullopt, State::queued),
      job("e", "new-ref", "r5", State::failed)};
  const AuditFindings f = audit(listed, jobs);
  EXPECT_EQ(f.listed, 6u);
  ASSERT_EQ(f.orphans.size(), 1u);
  EXPECT_EQ(f.orphans[0].id, "r9");
  ASSERT_EQ(f.missing.size(), 1u);
  EXPECT_EQ(f.missing[0].key, "c");
  EXPECT_EQ(f.outside, 2u);
  EXPECT_TRUE(f.labels_listed);
  const auto j = audit_to_json(f);
  EXPECT_EQ(j.at("orphans").as_array()[0].at("label"), "personad:ref-9");
  EXPECT_EQ(j.at("missing").as_array()[0].at("remote_id"), "gone");
  EXPECT_EQ(j.at("outside_personad"), 2);
  EXPECT_THAT(audit_text(f), HasSubstr("1 carry a personad label no job holds"));
  EXPECT_THAT(audit_text(f), HasSubstr("  missing c pending gone"));
}

TEST(Audit, WithoutLabelsItSaysSo) {
  RemotePersona p;
  p.id = "r1";
  const AuditFindings f = audit({p}, {});
  EXPECT_FALSE(f.labels_listed);
  EXPECT_EQ(f.outside, 1u);
  EXPECT_THAT(audit_text(f), HasSubstr("carries no labels"));
  EXPECT_TRUE(audit({}, {}).labels_listed);
}

}  // namespace
}  // namespace personad
