// A Store that fails on purpose: each read or write fails (before touching the database) with
// a seeded probability, as a full disk, an I/O error or a locked file would.
#pragma once

#include <random>
#include <map>
#include <set>
#include <string>

#include "personad/store.hpp"

namespace personad::simulation {

class FaultyStore final : public Store {
 public:
  FaultyStore(std::unique_ptr<Store> inner, std::mt19937_64& rng, double read_fail,
              double write_fail)
      : inner_(std::move(inner)), rng_(rng), read_fail_(read_fail), write_fail_(write_fail) {}

  std::size_t failures() const { return failures_; }
  // Scripted faults for tests: the next call of each named operation fails ("get", "apply", …).
  mutable std::multiset<std::string> fail_next;
  // Scripted faults for tests: fail the n-th call (1-based, counted from now) of an operation.
  void fail_nth(const std::string& op, int n) { countdown_[op] = n; }

  int schema_version() const override { return inner_->schema_version(); }
  Result<std::vector<EnqueueOutcome>> enqueue(const std::vector<PersonaSpec>& specs,
                                              std::string_view source, std::string_view reason,
                                              TimePoint now,
                                              const std::function<std::string()>& new_ref) override {
    if (fail(write_fail_, "enqueue")) return injected("enqueue");
    return inner_->enqueue(specs, source, reason, now, new_ref);
  }
  Result<void> apply(const Job& job, const Transition& t) override {
    if (fail(write_fail_, "apply")) return injected("apply");
    return inner_->apply(job, t);
  }
  Result<void> update(const Job& job) override {
    if (fail(write_fail_, "update")) return injected("update");
    return inner_->update(job);
  }
  Result<void> record_poll(const Job& job) override {
    if (fail(write_fail_, "record_poll")) return injected("record_poll");
    return inner_->record_poll(job);
  }
  Result<std::optional<Job>> find(std::string_view key) const override {
    if (fail(read_fail_, "find")) return injected("find");
    return inner_->find(key);
  }
  Result<std::optional<Job>> get(std::int64_t id) const override {
    if (fail(read_fail_, "get")) return injected("get");
    return inner_->get(id);
  }
  Result<std::optional<Job>> find_by_remote_id(std::string_view remote_id) const override {
    if (fail(read_fail_, "find_by_remote_id")) return injected("find_by_remote_id");
    return inner_->find_by_remote_id(remote_id);
  }
  Result<std::vector<Job>> list(std::optional<State> state) const override {
    if (fail(read_fail_, "list")) return injected("list");
    return inner_->list(state);
  }
  Result<std::vector<Job>> load_active() const override {
    if (fail(read_fail_, "load_active")) return injected("load_active");
    return inner_->load_active();
  }
  Result<std::vector<Transition>> history(std::int64_t job_id) const override {
    return inner_->history(job_id);  // the checks read it; the tracker never does
  }
  Result<StoreStats> stats() const override { return inner_->stats(); }
  Result<JobPage> select(const Selection& s, const SelectOptions& o) const override {
    return inner_->select(s, o);  // the query side's; the tracker never selects
  }
  Result<void> for_each_active(const std::function<void(const ScheduleEntry&)>& f) const override {
    if (fail(read_fail_, "for_each_active")) return injected("for_each_active");
    return inner_->for_each_active(f);
  }
  Result<void> begin_group() override { return inner_->begin_group(); }
  Result<void> end_group() override {
    if (fail(write_fail_, "end_group")) {
      inner_->abort_group();  // the whole group is lost, as when COMMIT fails on a full disk
      return injected("end_group");
    }
    return inner_->end_group();
  }
  void abort_group() override { inner_->abort_group(); }

  Store& inner() { return *inner_; }

 private:
  bool fail(double p, const char* op) const {
    if (auto c = countdown_.find(op); c != countdown_.end() && --c->second == 0) {
      countdown_.erase(c);
      ++failures_;
      return true;
    }
    if (auto it = fail_next.find(op); it != fail_next.end()) {
      fail_next.erase(it);
      ++failures_;
      return true;
    }
    if (p <= 0) return false;
    if (std::uniform_real_distribution<double>(0, 1)(rng_) >= p) return false;
    ++failures_;
    return true;
  }
  static Error injected(std::string_view what) {
    return make_error(ErrorKind::io, "store: " + std::string(what) + ": disk I/O error (injected)");
  }

  std::unique_ptr<Store> inner_;
  std::mt19937_64& rng_;
  double read_fail_, write_fail_;
  mutable std::size_t failures_ = 0;
  mutable std::map<std::string, int> countdown_;
};

}  // namespace personad::simulation
