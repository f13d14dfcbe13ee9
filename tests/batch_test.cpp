// Tests of the batch module: [[persona]] parsing, field validation with file/line/field errors,
// local media resolution, and discovery of batch files in a directory.
#include "personad/batch.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace personad {
namespace {

using personad::testing::TempDir;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A complete, valid entry; tests replace or drop single lines.
std::string entry(const std::string& key = "acme-jane-01") {
  return "[[persona]]\n"
         "key = \"" +
         key +
         "\"\n"
         "gender = \"f\"\n"
         "creator_name = \"Jane Doe\"\n"
         "video_scene = \"office\"\n"
         "keywords = \"friendly, professional\"\n"
         "lipsync_input = \"https://cdn.example.com/jane/lipsync.mp4\"\n"
         "consent_video = \"https://cdn.example.com/jane/consent.mp4\"\n"
         "labels = [\"acme\"]\n";
}

// `entry(key)` with the line starting with `field =` removed or replaced by `replacement`.
std::string entry_with(const std::string& field, const std::string& replacement,
                       const std::string& key = "acme-jane-01") {
  std::string text = entry(key);
  const auto start = text.find("\n" + field + " = ") + 1;
  const auto end = text.find('\n', start) + 1;
  return text.replace(start, end - start, replacement.empty() ? "" : replacement + "\n");
}

BatchParse parse(const std::string& text, const std::string& file = "/batches/b.toml") {
  return parse_batch(text, file);
}

// ---------------------------------------------------------------------------------------------
// Valid files

TEST(Batch, ParsesAValidFile) {
  const auto p = parse(entry() +
                       "webhook_url = \"https://hooks.example.com/x\"\n"
                       "gdown_url = \"https://drive.google.com/file/d/abc\"\n\n" +
                       entry("acme-omar-01"));
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  ASSERT_EQ(p.entries.size(), 2u);
  const PersonaSpec& s = p.entries[0].spec;
  EXPECT_EQ(s.key, "acme-jane-01");
  EXPECT_EQ(s.gender, "f");
  EXPECT_EQ(s.creator_name, "Jane Doe");
  EXPECT_EQ(s.video_scene, "office");
  EXPECT_EQ(s.keywords, "friendly, professional");
  EXPECT_EQ(s.lipsync_input, "https://cdn.example.com/jane/lipsync.mp4");
  EXPECT_EQ(s.consent_video, "https://cdn.example.com/jane/consent.mp4");
  EXPECT_EQ(s.labels, std::vector<std::string>{"acme"});
  EXPECT_EQ(s.webhook_url, "https://hooks.example.com/x");
  EXPECT_EQ(s.gdown_url, "https://drive.google.com/file/d/abc");
  EXPECT_EQ(p.entries[0].line, 1);
  EXPECT_EQ(p.entries[1].spec.key, "acme-omar-01");
  EXPECT_EQ(p.entries[1].line, 13);
  EXPECT_EQ(p.file, "/batches/b.toml");
}

TEST(Batch, OptionalFieldsMayBeLeftOut) {
  const auto p = parse(entry_with("keywords", ""));
  ASSERT_TRUE(p.ok());
  const auto q = parse(entry_with("consent_video", ""));
  ASSERT_TRUE(q.ok()) << q.errors.front().to_string();
  EXPECT_EQ(q.entries[0].spec.consent_video, "");
  const auto r = parse(entry_with("labels", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.entries[0].spec.labels.empty());
}

TEST(Batch, EmptyFileHasNoEntriesAndNoErrors) {
  for (const char* text : {"", "# nothing yet\n", "persona = []\n"}) {
    const auto p = parse(text);
    EXPECT_TRUE(p.ok()) << text;
    EXPECT_TRUE(p.entries.empty()) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: file, line, field

class BatchRequiredField : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchRequiredField, MissingIsReportedAtTheTableLine) {
  const std::string text = "# leading comment\n\n" + entry_with(GetParam(), "");
  const auto p = parse(text);
  EXPECT_TRUE(p.entries.empty());
  ASSERT_EQ(p.errors.size(), 1u) << p.errors.front().to_string();
  EXPECT_EQ(p.errors[0].line, 3);
  EXPECT_EQ(p.errors[0].field, GetParam());
  EXPECT_EQ(p.errors[0].message, "is required");
  EXPECT_EQ(p.errors[0].to_string(), "/batches/b.toml:3: field '" + GetParam() + "': is required");
}

INSTANTIATE_TEST_SUITE_P(Batch, BatchRequiredField,
                         ::testing::Values("key", "gender", "creator_name", "video_scene",
                                           "lipsync_input"));

TEST(Batch, BadGenderIsNamedAtItsLine) {
  const auto p = parse(entry_with("gender", "gender = \"x\""));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(),
            "/batches/b.toml:3: field 'gender': must be \"m\", \"f\" or \"nb\", got \"x\"");
  EXPECT_TRUE(p.entries.empty());
}

TEST(Batch, WrongTypeIsNamed) {
  const auto p = parse(entry_with("gender", "gender = 1"));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(),
            "/batches/b.toml:3: field 'gender': expected a string, got integer");

  const auto q = parse(entry_with("labels", "labels = \"acme\""));
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_EQ(q.errors[0].to_string(),
            "/batches/b.toml:9: field 'labels': expected an array of strings, got string");

  const auto r = parse(entry_with("labels", "labels = [\"acme\",\n  7]"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            "/batches/b.toml:10: field 'labels': element 2: expected a string, got integer");
}

TEST(Batch, UnknownFieldIsAnError) {
  const auto p = parse(entry() + "creatorname = \"x\"\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].line, 10);
  EXPECT_EQ(p.errors[0].field, "creatorname");
  EXPECT_THAT(p.errors[0].message, ::testing::StartsWith("unknown field (known: key, gender,"));
  EXPECT_TRUE(p.entries.empty());
}

TEST(Batch, UnknownTopLevelKeyIsAnError) {
  const auto p = parse("version = 1\n" + entry());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(),
            "/batches/b.toml:1: unknown top-level key 'version' (a batch file holds only "
            "[[persona]] tables)");
  EXPECT_TRUE(p.entries.empty());
}

TEST(Batch, PersonaMustBeAnArrayOfTables) {
  const auto p = parse("[persona]\nkey = \"a\"\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_THAT(p.errors[0].message, HasSubstr("write [[persona]]"));
  EXPECT_EQ(p.errors[0].line, 1);
}

TEST(Batch, SyntaxErrorHasALine) {
  const auto p = parse(entry() + "gdown_url = \"https://x\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].line, 10);
  EXPECT_THAT(p.errors[0].message, HasSubstr("(column "));
  EXPECT_TRUE(p.entries.empty());
}

TEST(Batch, TextLimitsCountCharactersNotBytes) {
  const std::string ok_ascii(255, 'a');
  std::string ok_utf8;
  for (int i = 0; i < 255; ++i) ok_utf8 += "\xC3\xA9";  // é: 2 bytes, 1 character
  EXPECT_TRUE(parse(entry_with("creator_name", "creator_name = \"" + ok_ascii + "\"")).ok());
  EXPECT_TRUE(parse(entry_with("creator_name", "creator_name = \"" + ok_utf8 + "\"")).ok());

  for (const std::string field : {"creator_name", "video_scene", "keywords"}) {
    const auto p = parse(entry_with(field, field + " = \"" + std::string(256, 'a') + "\""));
    ASSERT_EQ(p.errors.size(), 1u) << field;
    EXPECT_EQ(p.errors[0].field, field);
    EXPECT_EQ(p.errors[0].message, "is 256 characters long; the API allows at most 255");
    EXPECT_TRUE(p.entries.empty());
  }
}

TEST(Batch, UrlLimitsApplyToWebhookAndConsentUrls) {
  const std::string long_url = "https://cdn.example.com/" + std::string(177, 'a');  // 201 chars
  ASSERT_EQ(long_url.size(), 201u);
  const std::string ok_url = long_url.substr(0, 200);

  EXPECT_TRUE(parse(entry() + "webhook_url = \"" + ok_url + "\"\n").ok());
  const auto p = parse(entry() + "webhook_url = \"" + long_url + "\"\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "webhook_url");
  EXPECT_EQ(p.errors[0].message, "is 201 characters long; the API allows at most 200");

  const auto q = parse(entry_with("consent_video", "consent_video = \"" + long_url + "\""));
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_EQ(q.errors[0].field, "consent_video");
  // lipsync_input has no documented limit.
  EXPECT_TRUE(parse(entry_with("lipsync_input", "lipsync_input = \"" + long_url + "\"")).ok());
}

TEST(Batch, BadUrlsAreNamed) {
  const auto p = parse(entry() + "webhook_url = \"https://\"\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(),
            "/batches/b.toml:10: field 'webhook_url': URL has no host: \"https://\"");

  const auto q = parse(entry() + "gdown_url = \"https://exa mple.com/x\"\n");
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_EQ(q.errors[0].field, "gdown_url");
  EXPECT_THAT(q.errors[0].message, HasSubstr("is not a valid URL"));

  const auto r = parse(entry() + "webhook_url = \"ftp://example.com/x\"\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("must be an http:// or https:// URL"));

  const auto s = parse(entry_with("lipsync_input", "lipsync_input = \"ftp://example.com/a.mp4\""));
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].field, "lipsync_input");
  EXPECT_THAT(s.errors[0].message, HasSubstr("only http(s) URLs or local file paths"));
}

TEST(Batch, BadKeysAreRejected) {
  for (const std::string& key :
       std::vector<std::string>{"has space", "slash/key", "ümlaut", std::string(129, 'k')}) {
    const auto p = parse(entry(key));
    ASSERT_EQ(p.errors.size(), 1u) << key;
    EXPECT_EQ(p.errors[0].field, "key");
    EXPECT_EQ(p.errors[0].line, 2);
  }
  EXPECT_TRUE(parse(entry(std::string(128, 'k'))).ok());
  EXPECT_TRUE(parse(entry("A.b_c-9")).ok());
}

TEST(Batch, ReservedAndEmptyLabelsAreRejected) {
  const auto p = parse(entry_with("labels", "labels = [\"ok\", \"personad:abc\"]"));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "labels");
  EXPECT_THAT(p.errors[0].message, HasSubstr("element 2: the prefix \"personad:\" is reserved"));

  const auto q = parse(entry_with("labels", "labels = [\"\"]"));
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_EQ(q.errors[0].message, "element 1 must not be empty");
}

TEST(Batch, DuplicateKeyIsReportedAtTheSecondOccurrence) {
  const auto p = parse(entry() + "\n" + entry());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(),
            "/batches/b.toml:12: field 'key': duplicate key 'acme-jane-01' (first used at line 2)");
  EXPECT_TRUE(p.entries.empty());
}

TEST(Batch, OneBadEntryYieldsNoEntries) {
  const auto p = parse(entry("good-1") + entry("good-2") + entry_with("gender", "gender = \"q\"") +
                       entry("good-3"));
  EXPECT_FALSE(p.ok());
  EXPECT_TRUE(p.entries.empty());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "gender");
}

TEST(Batch, ErrorsAreInLineOrderAcrossEntries) {
  const auto p = parse(entry_with("video_scene", "video_scene = 3") + "zzz = 1\n" +
                       entry_with("creator_name", "creator_name = \"\"", "acme-jane-02"));
  ASSERT_EQ(p.errors.size(), 3u);
  EXPECT_EQ(p.errors[0].field, "video_scene");
  EXPECT_EQ(p.errors[1].field, "zzz");
  EXPECT_EQ(p.errors[2].field, "creator_name");
  EXPECT_LT(p.errors[0].line, p.errors[1].line);
  EXPECT_LT(p.errors[1].line, p.errors[2].line);
}

// ---------------------------------------------------------------------------------------------
// Local media

TEST(Batch, LocalFilesResolveAgainstTheBatchDirectory) {
  TempDir dir;
  dir.write("batches/videos/jane.mp4");
  dir.write("batches/media/consent.MOV");
  const fs::path batch = dir.path() / "batches" / "b.toml";
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"videos/./jane.mp4\"") + "",
                       batch.string());
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  EXPECT_EQ(p.entries[0].spec.lipsync_input, (dir.path() / "batches/videos/jane.mp4").string());

  const auto q =
      parse(entry_with("consent_video", "consent_video = \"file:videos/../media/consent.MOV\""),
            batch.string());
  ASSERT_TRUE(q.ok()) << q.errors.front().to_string();
  EXPECT_EQ(q.entries[0].spec.consent_video, (dir.path() / "batches/media/consent.MOV").string());

  const auto abs = (dir.path() / "batches/media/consent.MOV").string();
  const auto r =
      parse(entry_with("consent_video", "consent_video = \"file://" + abs + "\""), batch.string());
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.entries[0].spec.consent_video, abs);

  const auto s =
      parse(entry_with("consent_video", "consent_video = \"" + abs + "\""), batch.string());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.entries[0].spec.consent_video, abs);
}

TEST(Batch, RelativeBatchPathStillGivesAbsoluteMediaPaths) {
  TempDir dir;
  dir.write("v.mp4");
  const auto relative_batch = fs::relative(dir.path() / "b.toml", fs::current_path());
  const auto p =
      parse(entry_with("lipsync_input", "lipsync_input = \"v.mp4\""), relative_batch.string());
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  EXPECT_TRUE(fs::path(p.entries[0].spec.lipsync_input).is_absolute());
  EXPECT_TRUE(fs::equivalent(p.entries[0].spec.lipsync_input, dir.path() / "v.mp4"));
}

TEST(Batch, MissingLocalFileIsNamed) {
  TempDir dir;
  const fs::path batch = dir.path() / "b.toml";
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"nope.mp4\""), batch.string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(), batch.string() + ":7: field 'lipsync_input': local file '" +
                                         (dir.path() / "nope.mp4").string() + "' does not exist");
}

TEST(Batch, DirectoryIsNotAVideo) {
  TempDir dir;
  fs::create_directories(dir.path() / "clip.mp4");
  const auto p = parse(entry_with("consent_video", "consent_video = \"clip.mp4\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "consent_video");
  EXPECT_THAT(p.errors[0].message, HasSubstr("is not a regular file"));
}

TEST(Batch, UnreadableLocalFileIsNamed) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  const auto video = dir.write("secret.mp4");
  fs::permissions(video, fs::perms::none);
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"secret.mp4\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "lipsync_input");
  EXPECT_THAT(p.errors[0].message, HasSubstr("is not readable"));
}

TEST(Batch, LocalFileMustBeAVideo) {
  TempDir dir;
  dir.write("clip.avi");
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"clip.avi\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_THAT(p.errors[0].message, HasSubstr("must be a video: .mp4, .m4v, .mov or .qt"));
  for (const char* name : {"a.mp4", "b.M4V", "c.mov", "d.qt"}) {
    dir.write(name);
    EXPECT_TRUE(parse(entry_with("lipsync_input", "lipsync_input = \"" + std::string(name) + "\""),
                      (dir.path() / "b.toml").string())
                    .ok())
        << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Local media: the file that will be read is checked where it really is (issue 11, defect 2)

// The daemon reads and uploads local videos with its own rights: a `x.mp4` that is a symlink to
// a secret used to be uploaded.
TEST(Batch, SymlinkToAFileOutsideTheBatchTreeIsRefused) {
  TempDir dir;
  const auto secret = dir.write("secret", "root:$6$hash:19000:0:99999:7:::\n");
  fs::create_directories(dir.path() / "batches");
  fs::create_symlink(secret, dir.path() / "batches" / "x.mp4");
  const fs::path batch = dir.path() / "batches" / "b.toml";
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"x.mp4\""), batch.string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_TRUE(p.entries.empty());
  EXPECT_EQ(p.errors[0].file, batch.string());
  EXPECT_EQ(p.errors[0].line, 7);
  EXPECT_EQ(p.errors[0].field, "lipsync_input");
  EXPECT_THAT(p.errors[0].message, HasSubstr("really '" + fs::canonical(secret).string() + "'"));
  EXPECT_THAT(p.errors[0].message, HasSubstr("outside the batch file's directory tree"));

  if (fs::exists("/etc/shadow")) {
    fs::create_symlink("/etc/shadow", dir.path() / "batches" / "shadow.mp4");
    const auto q = parse(entry_with("consent_video", "consent_video = \"shadow.mp4\""),
                         batch.string());
    ASSERT_EQ(q.errors.size(), 1u);
    EXPECT_EQ(q.errors[0].field, "consent_video");
    EXPECT_THAT(q.errors[0].message, HasSubstr("/etc/shadow"));
  }
}

TEST(Batch, PathsThatClimbOutOfTheBatchTreeAreRefused) {
  TempDir dir;
  dir.write("elsewhere/a.mp4");
  const fs::path batch = dir.path() / "batches" / "b.toml";
  fs::create_directories(batch.parent_path());
  for (const std::string& value :
       std::vector<std::string>{"../elsewhere/a.mp4", "file:../elsewhere/a.mp4",
                                (dir.path() / "elsewhere/a.mp4").string()}) {
    const auto p =
        parse(entry_with("lipsync_input", "lipsync_input = \"" + value + "\""), batch.string());
    ASSERT_EQ(p.errors.size(), 1u) << value;
    EXPECT_EQ(p.errors[0].field, "lipsync_input");
    EXPECT_THAT(p.errors[0].message, HasSubstr("is outside the batch file's directory tree"))
        << value;
  }
}

// The extension that counts is the target's: a .mp4 name on a text file is not a video.
TEST(Batch, TheExtensionIsCheckedOnTheTarget) {
  TempDir dir;
  const auto notes = dir.write("notes.txt", "not a video");
  fs::create_symlink(notes, dir.path() / "clip.mp4");
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"clip.mp4\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "lipsync_input");
  EXPECT_THAT(p.errors[0].message, HasSubstr("must be a video"));
}

// The spec keeps the real path, so the upload reads exactly the file that was checked.
TEST(Batch, ASymlinkInsideTheTreeIsKeptAsItsRealPath) {
  TempDir dir;
  const auto real = dir.write("batches/takes/jane-final.mov");
  fs::create_symlink(real, dir.path() / "batches" / "jane.mp4");
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"jane.mp4\""),
                       (dir.path() / "batches" / "b.toml").string());
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  EXPECT_EQ(p.entries[0].spec.lipsync_input, fs::canonical(real).string());
}

// A FIFO would block the reader (and the upload) for good; a device is not a video.
TEST(Batch, FifosAndDevicesAreNotVideos) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir.path() / "pipe.mp4").c_str(), 0600), 0);
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"pipe.mp4\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "lipsync_input");
  EXPECT_THAT(p.errors[0].message, HasSubstr("is not a regular file (it is a FIFO)"));

  fs::create_symlink("/dev/zero", dir.path() / "zero.mp4");
  const auto q = parse(entry_with("lipsync_input", "lipsync_input = \"zero.mp4\""),
                       (dir.path() / "b.toml").string());
  ASSERT_EQ(q.errors.size(), 1u);
  // /dev/zero is outside the tree: refused before its type matters.
  EXPECT_THAT(q.errors[0].message, HasSubstr("/dev/zero"));
}

// Over the control socket, no local file is allowed unless batches.media_root names a tree.
TEST(Batch, SpecsOverTheSocketNameNoLocalFileWithoutAMediaRoot) {
  TempDir dir;
  const auto video = dir.write("a.mp4");
  PersonaSpec s;
  s.key = "k1";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = "studio";
  s.lipsync_input = fs::canonical(video).string();
  const auto errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "lipsync_input");
  EXPECT_THAT(errors[0].message, HasSubstr("batches.media_root"));
}

// ---------------------------------------------------------------------------------------------
// Text fields: no NUL, no control characters (issue 11, defect 9)

TEST(Batch, ControlCharactersInTextFieldsAreRefused) {
  const auto p = parse(entry_with("creator_name", "creator_name = \"Jane\\u0000Doe\""));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "creator_name");
  EXPECT_EQ(p.errors[0].line, 4);
  EXPECT_THAT(p.errors[0].message, HasSubstr("control characters (found U+0000 at character 5)"));

  const auto q = parse(entry_with("keywords", "keywords = \"a\\nforged=1\""));
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_EQ(q.errors[0].field, "keywords");

  const auto r = parse(entry_with("labels", "labels = [\"ok\", \"x\\u001b[31m\"]"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "labels");
  EXPECT_THAT(r.errors[0].message, HasSubstr("element 2"));

  const auto t = parse(entry_with("video_scene", "video_scene = \"desk\\u0085\""));  // C1 NEL
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].field, "video_scene");
  // Ordinary non-ASCII text stays welcome.
  EXPECT_TRUE(parse(entry_with("creator_name", "creator_name = \"Zoë Ünal 山田\"")).ok());
}

TEST(Batch, ValidateSpecRefusesNulInAnyTextField) {
  PersonaSpec s;
  s.key = "k1";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = std::string("studio\0hidden", 13);
  s.lipsync_input = std::string("https://cdn.example.com/a.mp4\0", 30);
  const auto errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].field, "video_scene");
  EXPECT_EQ(errors[1].field, "lipsync_input");
}

// A key's error message is printed and sent as JSON: it never carries the invalid bytes.
TEST(Batch, KeyErrorsShowInvalidBytesEscaped) {
  PersonaSpec s;
  s.key = "bad\xff";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = "studio";
  s.lipsync_input = "https://cdn.example.com/a.mp4";
  const auto errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "key");
  EXPECT_THAT(errors[0].message, HasSubstr("\\xff"));
  EXPECT_EQ(errors[0].message.find('\xff'), std::string::npos);
}

TEST(Batch, FileUrlWithHostIsRejected) {
  const auto p = parse(entry_with("lipsync_input", "lipsync_input = \"file://server/a.mp4\""));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "lipsync_input");
  EXPECT_THAT(p.errors[0].message, HasSubstr("file:///absolute/path or file:relative/path"));
}

// ---------------------------------------------------------------------------------------------
// validate_spec on its own (specs from the control socket)

PersonaSpec valid_spec() {
  PersonaSpec s;
  s.key = "k1";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = "studio";
  s.lipsync_input = "https://cdn.example.com/a.mp4";
  return s;
}

TEST(Batch, ValidateSpecAcceptsAValidSpec) { EXPECT_TRUE(validate_spec(valid_spec()).empty()); }

TEST(Batch, ValidateSpecWantsAbsoluteLocalPaths) {
  PersonaSpec s = valid_spec();
  s.lipsync_input = "videos/a.mp4";
  const auto errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "lipsync_input");
  EXPECT_EQ(errors[0].message, "local path must be absolute, got \"videos/a.mp4\"");
}

TEST(Batch, ValidateSpecReportsEveryProblem) {
  PersonaSpec s;
  s.gender = "x";
  s.creator_name = "   ";
  const auto errors = validate_spec(s);
  std::vector<std::string> fields;
  for (const auto& e : errors) fields.push_back(e.field);
  EXPECT_THAT(fields, ::testing::ElementsAre("key", "gender", "creator_name", "video_scene",
                                             "lipsync_input"));
}

// ---------------------------------------------------------------------------------------------
// Files and directories

TEST(Batch, LoadBatchFileReadsAndNamesTheFile) {
  TempDir dir;
  const auto path = dir.write("b.toml", entry_with("gender", "gender = \"q\""));
  const auto p = load_batch_file(path);
  EXPECT_EQ(p.file, path.string());
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].file, path.string());

  const auto missing = load_batch_file(dir.path() / "missing.toml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].line, 0);
  EXPECT_THAT(
      missing.errors[0].to_string(),
      ::testing::StartsWith((dir.path() / "missing.toml").string() + ": cannot read batch file: "));
}

TEST(Batch, ErrorFormatWithoutLineOrField) {
  EXPECT_EQ((BatchError{"f.toml", 0, "", "boom"}).to_string(), "f.toml: boom");
  EXPECT_EQ((BatchError{"f.toml", 4, "", "boom"}).to_string(), "f.toml:4: boom");
  EXPECT_EQ((BatchError{"f.toml", 4, "gender", "boom"}).to_string(),
            "f.toml:4: field 'gender': boom");
}

TEST(Batch, ListBatchFilesSkipsHiddenTempAndOtherFiles) {
  TempDir dir;
  dir.write("b.toml", "");
  dir.write("a.toml", "");
  dir.write(".hidden.toml", "");
  dir.write("c.toml~", "");
  dir.write("d.txt", "");
  dir.write("e.toml.swp", "");
  fs::create_directories(dir.path() / "sub.toml");
  fs::create_symlink(dir.path() / "a.toml", dir.path() / "link.toml");
  const auto files = list_batch_files(dir.path());
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.filename().string());
  EXPECT_THAT(names, ::testing::ElementsAre("a.toml", "b.toml", "link.toml"));
}

// ---------------------------------------------------------------------------------------------
// File sizes, memory and odd files (issue 11, defects 4 and 9)

// A 734 MB batch file aborted the daemon; a larger one was truncated. Refused before reading.
TEST(Batch, ABatchFileOver64MiBIsRefusedBeforeItIsRead) {
  TempDir dir;
  const fs::path path = dir.path() / "huge.toml";
  { std::ofstream(path) << "# sparse\n"; }
  fs::resize_file(path, (std::uintmax_t{64} << 20) + 1);  // sparse: no disk used
  const auto p = load_batch_file(path);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].file, path.string());
  EXPECT_EQ(p.errors[0].message,
            "cannot read batch file: is 64.0 MiB (67108865 bytes); at most 64 MiB is allowed");

  fs::resize_file(path, std::uintmax_t{3} << 30);  // 3 GiB, once silently truncated
  const auto q = load_batch_file(path);
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_THAT(q.errors[0].message, HasSubstr("is 3 GiB"));
}

// Running out of memory while reading or parsing a batch is an error of that file, not an
// abort of the daemon (a crash loop under systemd's MemoryMax).
TEST(Batch, RunningOutOfMemoryIsAnErrorOfTheFile) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve more address space than the limit allows";
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "sanitizers reserve more address space than the limit allows";
#endif
#endif
  TempDir dir;
  const fs::path path = dir.path() / "big.toml";
  {
    std::ofstream out(path);
    for (int i = 0; out.tellp() < (std::streamoff{40} << 20); ++i)
      out << "[[persona]]\nkey = \"k-" << i << "\"\ngender = \"f\"\ncreator_name = \"N " << i
          << "\"\nvideo_scene = \"s\"\nlipsync_input = \"https://x.example/" << i
          << ".mp4\"\nlabels = [\"a\", \"b\"]\n";
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Room for the file's text, not for its parse (toml++ needs several times the text).
    std::size_t pages = 0;
    if (std::ifstream statm("/proc/self/statm"); !(statm >> pages)) ::_exit(3);
    const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) +
                         (rlim_t{96} << 20);
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(3);
    const BatchParse p = load_batch_file(path);
    const bool ok = p.errors.size() == 1 && p.entries.empty() &&
                    p.errors[0].message.find("not enough memory") != std::string::npos &&
                    p.errors[0].file == path.string();
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the reader died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
#endif
}

// A FIFO named *.toml used to be skipped silently; it is listed, and reading it (without ever
// opening it: that would block) reports it by name.
TEST(Batch, AFifoOrDeviceNamedTomlIsReportedNotSkipped) {
  TempDir dir;
  dir.write("a.toml", "");
  ASSERT_EQ(::mkfifo((dir.path() / "pipe.toml").c_str(), 0600), 0);
  fs::create_symlink("/dev/null", dir.path() / "null.toml");
  const auto files = list_batch_files(dir.path());
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.filename().string());
  EXPECT_THAT(names, ::testing::ElementsAre("a.toml", "null.toml", "pipe.toml"));

  const auto p = load_batch_file(dir.path() / "pipe.toml");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].to_string(), (dir.path() / "pipe.toml").string() +
                                         ": cannot read batch file: not a regular file (it is "
                                         "a FIFO)");
  const auto q = load_batch_file(dir.path() / "null.toml");
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_THAT(q.errors[0].message, HasSubstr("a character device"));
}

TEST(Batch, ListBatchFilesOfAMissingDirectoryIsEmpty) {
  TempDir dir;
  EXPECT_TRUE(list_batch_files(dir.path() / "nope").empty());
}

TEST(Batch, ExampleBatchParses) {
  const fs::path example =
      fs::path(PERSONAD_SOURCE_DIR) / "config" / "batches.d" / "example.toml";
  const auto p = load_batch_file(example);
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  ASSERT_EQ(p.entries.size(), 3u);
  EXPECT_EQ(p.entries[0].spec.key, "acme-jane-01");
  EXPECT_EQ(p.entries[2].spec.gender, "nb");
  for (const auto& e : p.entries) EXPECT_FALSE(is_local_media(e.spec.lipsync_input));
}

// ---------------------------------------------------------------------------------------------
// batches.media_root

// Restores the process's media roots when a test ends.
struct MediaRootsGuard {
  std::vector<fs::path> saved = media_roots();
  ~MediaRootsGuard() { set_media_roots(saved); }
};

TEST(BatchMediaRoot, ConfiguredRootsReplaceTheBatchDirectory) {
  TempDir dir;
  dir.write("media/jane.mp4");
  dir.write("batches/local.mp4");
  const fs::path batch = dir.path() / "batches" / "b.toml";
  const std::vector<fs::path> roots{dir.path() / "media"};
  const auto p = parse_batch(
      entry_with("lipsync_input", "lipsync_input = \"../media/jane.mp4\""), batch.string(), roots);
  ASSERT_TRUE(p.ok()) << p.errors.front().to_string();
  EXPECT_EQ(p.entries[0].spec.lipsync_input, fs::canonical(dir.path() / "media/jane.mp4").string());

  const auto q = parse_batch(entry_with("lipsync_input", "lipsync_input = \"local.mp4\""),
                             batch.string(), roots);
  ASSERT_EQ(q.errors.size(), 1u);
  EXPECT_THAT(q.errors[0].message, HasSubstr("is outside batches.media_root (" +
                                             fs::canonical(dir.path() / "media").string() + ")"));

  // The process's roots (set by the daemon at start) apply to the overloads without roots.
  MediaRootsGuard guard;
  set_media_roots(roots);
  EXPECT_TRUE(parse(entry_with("lipsync_input", "lipsync_input = \"../media/jane.mp4\""),
                    batch.string())
                  .ok());
  EXPECT_FALSE(load_batch_file(dir.write("batches/c.toml",
                                         entry_with("lipsync_input",
                                                    "lipsync_input = \"local.mp4\"")))
                   .ok());
}

TEST(BatchMediaRoot, SocketSpecsMayNameRealFilesUnderARoot) {
  TempDir dir;
  MediaRootsGuard guard;
  const auto video = fs::canonical(dir.write("media/a.mp4"));
  const auto secret = dir.write("secret.txt", "s3cr3t");
  fs::create_symlink(video, dir.path() / "media" / "alias.mp4");
  fs::create_symlink(secret, dir.path() / "media" / "leak.mp4");
  set_media_roots({dir.path() / "media"});
  PersonaSpec s;
  s.key = "k1";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = "studio";

  s.lipsync_input = video.string();
  EXPECT_TRUE(validate_spec(s).empty());

  // A symlink is refused even when it points inside: the spec must hold what was checked.
  s.lipsync_input = (fs::canonical(dir.path() / "media") / "alias.mp4").string();
  auto errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("must be named by its real path '" + video.string()));

  s.lipsync_input = (fs::canonical(dir.path() / "media") / "leak.mp4").string();
  errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "lipsync_input");
  EXPECT_THAT(errors[0].message, HasSubstr("is outside batches.media_root"));

  s.lipsync_input = (fs::canonical(dir.path()) / "media" / ".." / "secret.txt").string();
  errors = validate_spec(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("is outside batches.media_root"));
}

TEST(BatchMediaRoot, ARootMatchesWholeDirectoryNamesOnly) {
  TempDir dir;
  dir.write("media-other/a.mp4");
  dir.write("media/b.mp4");
  const MediaPolicy policy{{fs::canonical(dir.path() / "media")}, "batches.media_root"};
  PersonaSpec s;
  s.key = "k1";
  s.gender = "nb";
  s.creator_name = "Sam";
  s.video_scene = "studio";
  s.lipsync_input = fs::canonical(dir.path() / "media-other/a.mp4").string();
  EXPECT_EQ(validate_spec(s, policy).size(), 1u);
  s.lipsync_input = fs::canonical(dir.path() / "media/b.mp4").string();
  EXPECT_TRUE(validate_spec(s, policy).empty());
  // No root at all: refused with the policy's reason.
  const MediaPolicy none{{}, "no local files here"};
  const auto errors = validate_spec(s, none);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message, HasSubstr("no local files here"));
}

TEST(BatchKey, KeyProblemFollowsTheContract) {
  EXPECT_EQ(key_problem("acme-jane_01.v2"), "");
  EXPECT_EQ(key_problem(std::string(128, 'k')), "");
  EXPECT_EQ(key_problem(""), "is required");
  EXPECT_EQ(key_problem(std::string(129, 'k')), "is 129 characters long; at most 128 are allowed");
  EXPECT_THAT(key_problem("%ff"), HasSubstr("may contain only"));
  EXPECT_EQ(key_problem("\xff"),
            "may contain only letters, digits, '.', '_' and '-', got \"\\xff\"");
  // Long bad keys are shortened in the message.
  EXPECT_LT(key_problem(std::string(20'000, '/')).size(), 200u);
}

// ---------------------------------------------------------------------------------------------
// A big file parsed in parts side by side (parse_batch_in_parts): the whole parse's answer

// `n` entries with what a cut may meet: comments, blank lines, CRLF, sub-keys in any order,
// multi-line strings and arrays, and a header written with spaces.
std::string varied_batch(int n) {
  std::string text = "# a batch\n\n";
  for (int i = 0; i < n; ++i) {
    const std::string key = "part-" + std::to_string(i);
    text += (i % 7 == 3 ? "  [[persona]]   # indented, with a comment\n" : "[[persona]]\n");
    text += "key = \"" + key + "\"\n";
    if (i % 5 == 1) text += "# a comment inside the table\n\n";
    text += "gender = \"" + std::string(i % 2 ? "m" : "f") + "\"\r\n";
    text += "video_scene = \"office " + std::to_string(i) + "\"\n";
    text += "creator_name = \"Creator " + std::to_string(i) + "\"\n";
    if (i % 4 == 2) text += "keywords = \"\"\"\\\n  friendly, \\\n  calm\"\"\"\n";
    text += "lipsync_input = \"https://cdn.example.com/" + key + "/lipsync.mp4\"\n";
    if (i % 3 == 0) text += "labels = [\n  \"acme\",\n  \"wave-" + std::to_string(i % 3) + "\",\n]\n";
    text += "\n";
  }
  return text;
}

void expect_same(const BatchParse& whole, const BatchParse& parts, const std::string& what) {
  ASSERT_EQ(parts.entries.size(), whole.entries.size()) << what;
  for (std::size_t i = 0; i < whole.entries.size(); ++i) {
    EXPECT_EQ(parts.entries[i].spec, whole.entries[i].spec) << what << ", entry " << i;
    EXPECT_EQ(parts.entries[i].line, whole.entries[i].line) << what << ", entry " << i;
  }
  ASSERT_EQ(parts.errors.size(), whole.errors.size()) << what;
  for (std::size_t i = 0; i < whole.errors.size(); ++i)
    EXPECT_EQ(parts.errors[i].to_string(), whole.errors[i].to_string()) << what;
}

const std::vector<fs::path> kNoRoots;

TEST(BatchInParts, EveryNumberOfPartsGivesTheWholeParsesEntriesAndLines) {
  const std::string text = varied_batch(60);
  const BatchParse whole = parse_batch_in_parts(text, "/b/big.toml", kNoRoots, 1);
  ASSERT_TRUE(whole.ok()) << whole.errors.front().to_string();
  ASSERT_EQ(whole.entries.size(), 60u);
  EXPECT_EQ(whole.entries[2].spec.keywords, "friendly, calm");
  for (int parts : {2, 3, 4, 7, 60, 200}) {
    const BatchParse in_parts = parse_batch_in_parts(text, "/b/big.toml", kNoRoots, parts);
    expect_same(whole, in_parts, std::to_string(parts) + " parts");
    // As many parts as asked while there are headers enough; never more than the entries.
    if (parts <= 7)
      EXPECT_EQ(in_parts.parts, parts);
    else
      EXPECT_THAT(in_parts.parts, ::testing::AllOf(::testing::Gt(7), ::testing::Le(60)));
  }
}

TEST(BatchInParts, ABigFileIsParsedInPartsWithTheSameAnswer) {
  // Over 1 MiB: parse_batch itself cuts it (on a machine with more than one core).
  const std::string text = varied_batch(6'000);
  ASSERT_GT(text.size(), 1u << 20);
  const BatchParse parsed = parse_batch(text, "/b/big.toml", kNoRoots);
  expect_same(parse_batch_in_parts(text, "/b/big.toml", kNoRoots, 1), parsed, "parse_batch");
  if (std::thread::hardware_concurrency() > 1) {
    EXPECT_GT(parsed.parts, 1);
  }
}

TEST(BatchInParts, ACutInsideAMultiLineStringOrArrayLeavesTheWholeToDecide) {
  // The only header lines after the middle are inside a multi-line string and a multi-line
  // array: a part cut there is no TOML, so the whole file is parsed, and its answer (a keyword
  // with line breaks, an array of arrays) is the one given.
  for (const std::string& inside :
       {std::string("keywords = \"\"\"\n[[persona]]\n[[persona]]\n\"\"\"\n"),
        std::string("labels = [\n\"a\",\n[[persona]]\n]\n")}) {
    std::string text = entry_with(inside.substr(0, inside.find(' ')), "", "s-1") +
                       std::string(2'000, '#') + "\n" + inside + entry("s-2");
    const BatchParse whole = parse_batch_in_parts(text, "/b/s.toml", kNoRoots, 1);
    ASSERT_FALSE(whole.ok()) << inside;
    for (int parts : {2, 3, 4}) {
      const BatchParse in_parts = parse_batch_in_parts(text, "/b/s.toml", kNoRoots, parts);
      expect_same(whole, in_parts, std::to_string(parts) + " parts, " + inside);
      EXPECT_EQ(in_parts.parts, 1);
    }
  }
}

TEST(BatchInParts, ErrorsAreTheWholeParsesWhereverTheyAre) {
  std::string text = varied_batch(40);
  // A key used twice far apart (in two parts), a bad gender late in the file, a syntax error.
  text += entry("part-1") + entry_with("gender", "gender = \"x\"", "late-1");
  for (const std::string& extra : {std::string(), std::string("[[persona]]\nkey = \"unterminated\n")}) {
    const std::string t = text + extra;
    const BatchParse whole = parse_batch_in_parts(t, "/b/e.toml", kNoRoots, 1);
    ASSERT_FALSE(whole.ok());
    for (int parts : {2, 3, 4, 9})
      expect_same(whole, parse_batch_in_parts(t, "/b/e.toml", kNoRoots, parts),
                  std::to_string(parts) + " parts" + (extra.empty() ? "" : ", syntax error"));
  }
  EXPECT_THAT(parse_batch_in_parts(text, "/b/e.toml", kNoRoots, 4).errors.front().to_string(),
              HasSubstr("duplicate key 'part-1'"));
}

TEST(BatchInParts, AnInlinePersonaArrayBeforeACutIsTheWholesError) {
  // persona = [{…}] then [[persona]]: TOML cannot append to a static array.
  const std::string first =
      "persona = [{ key = \"inline-1\", gender = \"f\", creator_name = \"A\", video_scene = "
      "\"office\", lipsync_input = \"https://cdn.example.com/a/lipsync.mp4\" }]\n" +
      std::string(3'000, '#') + "\n";
  const std::string text = first + entry("after-1") + entry("after-2");
  const BatchParse whole = parse_batch_in_parts(text, "/b/i.toml", kNoRoots, 1);
  ASSERT_FALSE(whole.ok());
  for (int parts : {2, 3})
    expect_same(whole, parse_batch_in_parts(text, "/b/i.toml", kNoRoots, parts),
                std::to_string(parts) + " parts");
}

}  // namespace
}  // namespace personad
