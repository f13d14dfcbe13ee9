// Tests of batch_fingerprint: the same bytes give the same print whether read from a file in
// blocks or held in memory, one byte changed gives another, and what cannot be read is an
// error naming the file (never a print of nothing).
#include "personad/batch_fingerprint.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "personad/batch.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using personad::testing::TempDir;

// Bytes that are not all alike, so a block read out of place would change the digest.
std::string varied_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  return s;
}

TEST(BatchFingerprint, IsSha256InHexAndTheSize) {
  // FIPS 180-2's test vectors.
  EXPECT_EQ(*batch_fingerprint_of(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:0");
  EXPECT_EQ(*batch_fingerprint_of("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad:3");
}

TEST(BatchFingerprint, TheSameBytesGiveTheSamePrintFromAFileOrFromMemory) {
  TempDir dir;
  // Several blocks and a part of one: the file is read in pieces, never whole.
  const std::string bytes = varied_bytes(3 * 256 * 1024 + 12'345);
  const auto a = dir.write("a.toml", bytes);
  const auto b = dir.write("b.toml", bytes);
  auto pa = batch_fingerprint(a);
  auto pb = batch_fingerprint(b);
  ASSERT_TRUE(pa) << pa.message();
  ASSERT_TRUE(pb) << pb.message();
  EXPECT_EQ(*pa, *pb);
  EXPECT_EQ(*pa, *batch_fingerprint_of(bytes));
  EXPECT_THAT(*pa, ::testing::EndsWith(":" + std::to_string(bytes.size())));
  EXPECT_EQ(*batch_fingerprint(a), *pa) << "read again: the same";
}

TEST(BatchFingerprint, OneByteChangedAnywhereGivesAnotherPrint) {
  TempDir dir;
  const std::string bytes = varied_bytes(600'000);
  const auto original = *batch_fingerprint(dir.write("a.toml", bytes));
  for (std::size_t at : {std::size_t{0}, std::size_t{262'144}, bytes.size() - 1}) {
    std::string changed = bytes;
    changed[at] = static_cast<char>(changed[at] ^ 1);
    auto p = batch_fingerprint(dir.write("a.toml", changed));
    ASSERT_TRUE(p) << p.message();
    EXPECT_NE(*p, original) << "byte " << at;
  }
  // One byte more or less, too.
  EXPECT_NE(*batch_fingerprint(dir.write("a.toml", bytes + " ")), original);
  EXPECT_NE(*batch_fingerprint(dir.write("a.toml", bytes.substr(1))), original);
}

TEST(BatchFingerprint, WhatCannotBeReadIsAnErrorNamingTheFile) {
  TempDir dir;
  const fs::path missing = dir.path() / "missing.toml";
  auto p = batch_fingerprint(missing);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.kind(), ErrorKind::io);
  EXPECT_THAT(p.message(), StartsWith("cannot fingerprint batch file " + missing.string() + ": "));
  EXPECT_THAT(p.message(), HasSubstr("No such file"));

  // A FIFO is never opened (that would block), a directory is no batch file.
  const fs::path fifo = dir.path() / "pipe.toml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  p = batch_fingerprint(fifo);
  ASSERT_FALSE(p);
  EXPECT_THAT(p.message(), HasSubstr(fifo.string()));
  EXPECT_THAT(p.message(), HasSubstr("not a regular file (it is a FIFO)"));
  p = batch_fingerprint(dir.path());
  ASSERT_FALSE(p);
  EXPECT_THAT(p.message(), HasSubstr("not a regular file"));
}

// Larger than any batch file may be: refused from its size, before a byte is read (hashing
// gigabytes at every scan only for the parse to refuse the file would be waste).
TEST(BatchFingerprint, AFileLargerThanABatchMayBeIsRefusedUnread) {
  TempDir dir;
  const fs::path path = dir.path() / "huge.toml";
  { std::ofstream(path) << "# sparse\n"; }
  fs::resize_file(path, std::uintmax_t{3} << 30);  // sparse: no disk used
  auto p = batch_fingerprint(path);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.kind(), ErrorKind::invalid);
  EXPECT_THAT(p.message(), HasSubstr(path.string()));
  EXPECT_THAT(p.message(), HasSubstr("a batch file is at most 64 MiB"));
}

// What the daemon remembers is the print of the bytes it parsed: load_batch_file gives it, the
// same as the file's.
TEST(BatchFingerprint, LoadBatchFileGivesThePrintOfWhatItParsed) {
  TempDir dir;
  const std::string text =
      "[[persona]]\nkey = \"fp-1\"\ngender = \"f\"\ncreator_name = \"Jane\"\n"
      "video_scene = \"office\"\nkeywords = \"friendly\"\n"
      "lipsync_input = \"https://cdn.example.com/a.mp4\"\n"
      "consent_video = \"https://cdn.example.com/b.mp4\"\n";
  const auto path = dir.write("a.toml", text);
  const BatchParse parse = load_batch_file(path);
  ASSERT_TRUE(parse.ok()) << parse.errors[0].to_string();
  EXPECT_EQ(parse.fingerprint, *batch_fingerprint(path));
  EXPECT_EQ(parse.fingerprint, *batch_fingerprint_of(text));
  // A file that cannot be read has none.
  EXPECT_EQ(load_batch_file(dir.path() / "missing.toml").fingerprint, "");
}

}  // namespace
}  // namespace personad
