// personactl's commands without a daemon: reads fall back to the database, submit writes queued
// rows, steering is refused with a clear message; tables and JSON as the contract says.
#include "personad/ctl.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <sstream>

#include "personad/store.hpp"
#include "temp_dir.hpp"

namespace personad::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.store_path = (dir_.path() / "p.db").string();
    config_.control_socket = (dir_.path() / "nobody-listens.sock").string();
  }
  ctl::Context ctx() { return ctl::Context{config_, Millis(1000), out_, err_}; }
  std::string batch(const std::string& key, const std::string& gender = "f") {
    return dir_.write(key + ".toml",
                      "[[persona]]\nkey = \"" + key + "\"\ngender = \"" + gender +
                          "\"\ncreator_name = \"Jane\"\nvideo_scene = \"office\"\n"
                          "lipsync_input = \"https://cdn.example.com/l.mp4\"\n")
        .string();
  }

  TempDir dir_{"ctl"};
  Config config_;
  std::ostringstream out_, err_;
};

TEST_F(CtlTest, RenderTableAlignsColumns) {
  EXPECT_EQ(ctl::render_table({{"KEY", "STATE"}, {"acme-jane-01", "done"}, {"b", "pending"}}),
            "KEY           STATE\n"
            "acme-jane-01  done\n"
            "b             pending\n");
}

TEST_F(CtlTest, OfflineSubmitQueuesThenReadsComeFromTheDatabase) {
  ASSERT_EQ(ctl::submit(ctx(), {batch("a"), batch("b")}), ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "queued a\nqueued b\n");
  EXPECT_THAT(err_.str(), HasSubstr("personad is not running"));
  out_.str("");
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk);
  EXPECT_EQ(out_.str(), "known a queued\n");

  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), "", true), ctl::kOk) << err_.str();
  auto list = json::parse(out_.str());
  ASSERT_EQ(list.as_array().size(), 2u);
  EXPECT_EQ(list.as_array()[0].at("state"), "queued");

  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), "", false), ctl::kOk);
  EXPECT_THAT(out_.str(), HasSubstr("KEY"));
  EXPECT_THAT(out_.str(), HasSubstr("\na "));

  out_.str("");
  ASSERT_EQ(ctl::history(ctx(), "a", true), ctl::kOk);
  auto h = json::parse(out_.str()).as_array();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].at("to"), "queued");

  out_.str("");
  ASSERT_EQ(ctl::stats(ctx(), true), ctl::kOk);
  EXPECT_EQ(json::parse(out_.str()).at("counts").at("queued"), 2);
}

TEST_F(CtlTest, InvalidFileIsExitTwoAndEnqueuesNothing) {
  EXPECT_EQ(ctl::submit(ctx(), {batch("bad", "x")}), ctl::kInvalid);
  EXPECT_THAT(err_.str(), HasSubstr("bad.toml:"));
  EXPECT_THAT(err_.str(), HasSubstr("gender"));
  EXPECT_EQ(ctl::show(ctx(), "bad", false), ctl::kRefused);  // no database was even made
}

TEST_F(CtlTest, UnknownKeysAndSteeringWithoutDaemonAreRefused) {
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk);
  err_.str("");
  EXPECT_EQ(ctl::show(ctx(), "zzz", true), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("unknown key 'zzz'"));
  EXPECT_EQ(ctl::history(ctx(), "zzz", true), ctl::kRefused);
  EXPECT_EQ(ctl::cancel(ctx(), "a"), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("personad is not running"));
  EXPECT_EQ(ctl::resolve(ctx(), "a", "", false), ctl::kInvalid);
  EXPECT_EQ(ctl::list(ctx(), "sideways", false), ctl::kInvalid);
}

}  // namespace
}  // namespace personad::testing
