// The text loader: grammar, conversions, errors with line and column, and thread-count independence.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include <unistd.h>
#include <zlib.h>

#include "loadtxt/fields.hpp"
#include "moving_room.hpp"
#include "smaps.hpp"
#include "ndshm/loadtxt.hpp"

using namespace ndshm;

namespace {

/// A 64-bit LCG's high bits (its low bits repeat with short periods).
class random_numbers {
public:
  explicit random_numbers(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t operator()() noexcept { return (m_state = m_state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; }

private:
  std::uint64_t m_state;
};

std::vector<double> load_doubles(std::string_view text, text_format format, std::size_t columns) {
  auto source = text_source::borrow(text, "mem");
  auto plan = plan_rows(source, format);
  std::vector<field_spec> fields;
  for (std::uint32_t i = 0; i < columns; ++i)
    fields.push_back({field_kind::floating, 8, 8 * i, false, "float64"});
  std::vector<double> out(plan.rows * columns);
  parse_rows(source, format, plan, fields, reinterpret_cast<std::byte *>(out.data()), 8 * columns);
  return out;
}

} // namespace

// The 8-bytes-at-a-time scanners must agree with the one-character-at-a-time ones on every input.
TEST(fields, swar_scanners_agree_with_the_plain_ones) {
  random_numbers next(42);
  const std::string alphabet = "0123456789.-+eE\t x/:";
  std::vector<std::string> cases = {"0", "-0.0", "7", "12345678", "123456789", "1234567890123456",
                                    "123456789012345", "99999999999999999999", "1.5", ".5", "5.", "-.",
                                    ".", "-", "+7", "1e5", "77.84", "0.000000000000001", "00000000000000012",
                                    // 15 digits in 16 bytes: past the 16-byte load, left to the general path
                                    "-123456789012345", "1234567890.12345", ".123456789012345", "123456789012345."};
  for (int i = 0; i < 200000; ++i) {
    std::string text;
    auto length = next() % 22;
    for (std::uint64_t k = 0; k < length; ++k) // mostly digits, sometimes anything
      text += next() % 4 != 0 ? static_cast<char>('0' + next() % 10) : alphabet[next() % alphabet.size()];
    cases.push_back(text);
  }
  for (const auto &c : cases) {
    std::string buffer = c + "\t" + std::string(40, '7'); // the text goes on past the field
    const char *p = buffer.data();
    const char *e = p + c.size();
    const char *limit = buffer.data() + buffer.size();
    // The fast scanners take a number that is the whole field, or leave it to the careful ones.
    const bool digits_only = c.find_first_not_of("0123456789.+-") == std::string::npos;
    double a = 0, b = 0;
    const char *plain = detail::scan_short_decimal(p, e, a);
    const char *fast = detail::scan_plain_decimal(p, b);
    if (fast == e) {
      ASSERT_EQ(plain, e) << c;
      ASSERT_EQ(std::bit_cast<std::uint64_t>(a), std::bit_cast<std::uint64_t>(b)) << c;
    }
    auto significant = std::count_if(c.begin(), c.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    // (the decimal's end must fall within the 16 bytes it loads: 15 bytes at most)
    if (plain == e && digits_only && significant <= 15 && c.size() <= 15)
      ASSERT_EQ(fast, e) << c;
    bool na = false, nb = false;
    std::uint64_t ma = 0, mb = 0;
    plain = detail::scan_integer(p, e, na, ma);
    fast = detail::scan_plain_integer(p, nb, mb);
    if (fast == e)
      ASSERT_TRUE(plain == e && na == nb && ma == mb) << c;
    if (plain == e && significant <= 15)
      ASSERT_EQ(fast, e) << c;
  }
}

TEST(fields, doubles_follow_python_float) {
  double v = 0;
  EXPECT_TRUE(detail::parse_double(" +1.5 ", v));
  EXPECT_EQ(v, 1.5);
  EXPECT_TRUE(detail::parse_double("-Infinity", v));
  EXPECT_TRUE(std::isinf(v) && v < 0);
  EXPECT_TRUE(detail::parse_double("nan", v));
  EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(detail::parse_double("1e999", v));
  EXPECT_TRUE(std::isinf(v));
  EXPECT_TRUE(detail::parse_double("1e-999", v));
  EXPECT_EQ(v, 0.0);
  EXPECT_TRUE(detail::parse_double("0.1", v));
  EXPECT_EQ(v, 0.1);
  for (const char *bad : {"", "+", "1_0", "0x10", "1.5e", "nan(1)", "--1", "+-1", "1 2"})
    EXPECT_FALSE(detail::parse_double(bad, v)) << bad;
}

TEST(fields, integers_check_range_and_sign) {
  std::byte out[8];
  field_spec i8{field_kind::signed_int, 1, 0, false, "int8"};
  EXPECT_TRUE(detail::convert(i8, " -128 ", out));
  EXPECT_FALSE(detail::convert(i8, "128", out));
  field_spec u2{field_kind::unsigned_int, 2, 0, true, ">u2"};
  EXPECT_TRUE(detail::convert(u2, "+258", out));
  EXPECT_EQ(out[0], std::byte{1}); // big-endian
  EXPECT_EQ(out[1], std::byte{2});
  EXPECT_FALSE(detail::convert(u2, "-1", out));
  EXPECT_FALSE(detail::convert(u2, "1.0", out));
}

TEST(loadtxt, comments_blank_lines_crlf_and_skiprows) {
  text_format format;
  format.skiprows = 1;
  auto values = load_doubles("header line\n1 2 # c\r\n\n   \n# only a comment\n3\t4\r\n5 6", format, 2);
  EXPECT_EQ(values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(loadtxt, delimiter_quotes_and_usecols) {
  text_format format;
  format.delimiter = ',';
  format.quote = '"';
  format.usecols = {-1, 0};
  auto source = text_source::borrow("\"a,\"\"b\",1,2.5\nc,3,4.5\n", "mem");
  auto plan = plan_rows(source, format);
  ASSERT_EQ(plan.rows, 2u);
  EXPECT_EQ(plan.columns, 3u);
  std::vector<field_spec> fields{{field_kind::floating, 8, 0, false, "float64"},
                                 {field_kind::bytes, 5, 8, false, "S5"}};
  std::vector<std::byte> out(2 * 13);
  parse_rows(source, format, plan, fields, out.data(), 13);
  double x = 0;
  std::memcpy(&x, out.data(), 8);
  EXPECT_EQ(x, 2.5);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(out.data() + 8), 4), "a,\"b");
}

// Rows of float64 columns take a run compiled for them when the columns are stored one after another;
// stored apart (a structured dtype with gaps), each column goes to its own field, and the gaps stay.
TEST(loadtxt, float64_columns_stored_apart_keep_their_offsets) {
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += std::to_string(i) + ".5 -" + std::to_string(i) + "\n";
  for (char delimiter : {'\0', ' '}) {
    text_format format;
    format.delimiter = delimiter;
    auto source = text_source::borrow(text, "mem");
    auto plan = plan_rows(source, format);
    ASSERT_EQ(plan.rows, 300u);
    std::vector<field_spec> fields{{field_kind::floating, 8, 0, false, "float64"},
                                   {field_kind::floating, 8, 16, false, "float64"}};
    std::vector<std::byte> out(300 * 24, std::byte{0xAB});
    parse_rows(source, format, plan, fields, out.data(), 24);
    for (int i = 0; i < 300; ++i) {
      double x = 0, y = 0;
      std::memcpy(&x, out.data() + 24 * i, 8);
      std::memcpy(&y, out.data() + 24 * i + 16, 8);
      ASSERT_EQ(x, i + 0.5) << i;
      ASSERT_EQ(y, -i) << i;
      ASSERT_EQ(out[24 * i + 8], std::byte{0xAB}) << i;
    }
  }
}

// (52 MB of text: 3 chunks of 16 MiB or more, taken in turn by 2 threads, or 4 chunks on 4. A later
// chunk's bad row, found first, is not the one reported.)
TEST(loadtxt, errors_name_file_line_and_column_whatever_the_threads) {
  std::string text;
  text.reserve(52'000'000);
  for (int i = 0; i < 13'000'000; ++i)
    text += (i == 150'000 ? "1 x\n" : i == 12'000'000 ? "1 y\n" : "1 2\n");
  for (unsigned threads : {1u, 2u, 4u}) {
    text_format format;
    format.threads = threads;
    try {
      (void)load_doubles(text, format, 2);
      ADD_FAILURE() << "no error";
    } catch (const parse_error &e) {
      EXPECT_EQ(e.line, 150'001u);
      EXPECT_EQ(e.column, 3u);
      EXPECT_EQ(e.text, "x");
      EXPECT_EQ(e.expected, "float64");
      EXPECT_STREQ(e.what(), "mem:150001:3: could not convert string 'x' to float64 at row 150000, column 2.");
    }
  }
}

TEST(loadtxt, ragged_rows_and_long_strings_are_errors) {
  text_format format;
  EXPECT_THROW((void)load_doubles("1 2\n3\n", format, 2), parse_error);
  auto source = text_source::borrow("abcdef\n", "mem");
  auto plan = plan_rows(source, format);
  std::vector<field_spec> fields{{field_kind::bytes, 3, 0, false, "S3"}};
  std::byte out[3];
  EXPECT_THROW(parse_rows(source, format, plan, fields, out, 3), parse_error);
  format.truncate_strings = true;
  parse_rows(source, format, plan, fields, out, 3);
  EXPECT_EQ(std::memcmp(out, "abc", 3), 0);
}

// Text numpy reads by rules of its own (it decodes bytes past ASCII; '\r' alone ends its lines) is no
// error for numpy: the error says so (other_grammar), on the fast path's rows and the general path's.
TEST(loadtxt, text_numpy_reads_otherwise_is_flagged) {
  const std::string rows(64 * 40, '\n');
  for (std::string text : {"1,2\n3,\xc2\xa0" "4\n", "1,2\r3,4\n", "chr\xc3\xa9,1\n", "1,2\n3,x\n"}) {
    for (const std::string &tail : {std::string(), rows}) {
      text_format format;
      format.delimiter = ',';
      const std::string whole = text + tail;
      auto source = text_source::borrow(whole, "mem");
      auto plan = plan_rows(source, format);
      std::vector<field_spec> fields{{field_kind::bytes, 8, 0, false, "S8"}, {field_kind::floating, 8, 8, false, "f8"}};
      std::vector<std::byte> out(16 * plan.rows);
      try {
        (void)parse_rows(source, format, plan, fields, out.data(), 16);
        ADD_FAILURE() << text;
      } catch (const parse_error &e) {
        EXPECT_EQ(e.other_grammar, text.find('x') == std::string::npos) << text << ": " << e.what();
      }
    }
  }
}

TEST(loadtxt, max_rows_counts_data_rows_and_bom_is_skipped) {
  text_format format;
  format.max_rows = 2;
  auto values = load_doubles("\xEF\xBB\xBF" "1\n\n#c\n2\n3\n", format, 1);
  EXPECT_EQ(values, (std::vector<double>{1, 2}));
}

namespace {

std::string read_bytes(const std::string &path) {
  std::string bytes;
  std::FILE *f = std::fopen(path.c_str(), "rb");
  char buffer[1 << 16];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;)
    bytes.append(buffer, n);
  std::fclose(f);
  return bytes;
}

void write_bytes(const std::string &path, const std::string &bytes) {
  std::FILE *f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

std::string write_gzip(const std::string &text, int members) {
  static int counter = 0;
  std::string path = ::testing::TempDir() + "ndshm-stream-" + std::to_string(::getpid()) + "-" +
                     std::to_string(counter++) + ".gz";
  std::size_t step = text.size() / static_cast<std::size_t>(members) + 1;
  for (std::size_t at = 0, k = 0; k < static_cast<std::size_t>(members); ++k, at += step) {
    gzFile f = gzopen(path.c_str(), k == 0 ? "wb" : "ab"); // "ab": a new member
    if (at < text.size())
      gzwrite(f, text.data() + at, static_cast<unsigned>(std::min(step, text.size() - at)));
    gzclose(f);
  }
  return path;
}

/// BGZF, as bgzip writes it: members of at most `payload` bytes of text, each naming its compressed size
/// in a "BC" extra field, then the empty end-of-file member; `tail` (a plain gzip member) follows.
std::string write_bgzf(const std::string &text, std::size_t payload, const std::string &tail = {}) {
  static int counter = 0;
  std::string path = ::testing::TempDir() + "ndshm-bgzf-" + std::to_string(::getpid()) + "-" +
                     std::to_string(counter++) + ".gz";
  std::string file;
  auto le = [&file](std::uint32_t value, int bytes) {
    for (int k = 0; k < bytes; ++k)
      file += static_cast<char>(value >> (8 * k) & 0xff);
  };
  for (std::size_t at = 0; at <= text.size(); at += payload) { // the last pass: the empty EOF member
    std::string_view part = std::string_view(text).substr(std::min(at, text.size()), payload);
    z_stream zs{};
    deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY); // raw deflate
    std::string deflated(deflateBound(&zs, part.size()) + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(part.data()));
    zs.avail_in = static_cast<uInt>(part.size());
    zs.next_out = reinterpret_cast<Bytef *>(deflated.data());
    zs.avail_out = static_cast<uInt>(deflated.size());
    deflate(&zs, Z_FINISH);
    deflated.resize(zs.total_out);
    deflateEnd(&zs);
    file += std::string("\x1f\x8b\x08\x04\0\0\0\0\0\xff\x06\0BC\x02\0", 16);
    le(static_cast<std::uint32_t>(18 + deflated.size() + 8 - 1), 2);
    file += deflated;
    le(static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef *>(part.data()), static_cast<uInt>(part.size()))), 4);
    le(static_cast<std::uint32_t>(part.size()), 4);
    if (part.empty())
      break;
  }
  write_bytes(path, file);
  if (!tail.empty()) {
    gzFile g = gzopen(path.c_str(), "ab");
    gzwrite(g, tail.data(), static_cast<unsigned>(tail.size()));
    gzclose(g);
  }
  return path;
}

struct loaded {
  std::uint64_t rows = 0, columns = 0, lines = 0, moves = 0;
  std::vector<double> values;
  std::string error;
};

/// Two float64 columns of text: planned then parsed (gz null), parsed in one pass (one_pass), or
/// streamed from the gzip file *gz in blocks of about `block` bytes.
loaded load(text_format format, const std::string &text, const std::string *gz, std::size_t block,
            bool one_pass = false) {
  loaded got;
  std::vector<field_spec> fields{{field_kind::floating, 8, 0, false, "float64"},
                                 {field_kind::floating, 8, 8, false, "float64"}};
  try {
    std::vector<std::byte> grown; // rows parsed into room that moves as it grows
    auto take = [&](std::uint64_t rows) {
      got.values.resize(rows * 2);
      if (rows != 0) // (no rows: both buffers may be null, which memcpy may not take)
        std::memcpy(got.values.data(), grown.data(), rows * 16);
    };
    if (gz == nullptr && one_pass) {
      auto source = text_source::borrow(text, "f.gz");
      auto plan = parse_one_pass(source, format, fields, 16, test_support::moving_room{grown, &got.moves});
      got.rows = plan.rows, got.columns = plan.columns, got.lines = plan.lines;
      take(plan.rows);
    } else if (gz == nullptr) {
      auto source = text_source::borrow(text, "f.gz");
      auto plan = plan_rows(source, format);
      got.rows = plan.rows, got.columns = plan.columns, got.lines = plan.lines;
      got.values.resize(plan.rows * 2);
      parse_rows(source, format, plan, fields, reinterpret_cast<std::byte *>(got.values.data()), 16);
    } else {
      auto blocks = text_blocks::open_gzip(*gz, block);
      auto plan = parse_stream(blocks, format, fields, 16, test_support::moving_room{grown, &got.moves});
      got.rows = plan.rows, got.columns = plan.columns, got.lines = plan.lines;
      take(plan.rows);
      text_format first = format;
      first.max_rows = 0; // the first row's column count, reading no further
      EXPECT_EQ(plan_blocks(blocks, first).columns, plan.columns);
    }
  } catch (const parse_error &e) {
    got.error = std::to_string(e.line) + ":" + std::to_string(e.column) + ":" + e.text;
  }
  return got;
}

} // namespace

// A .gz file is read in blocks of whole lines, in one pass. Whatever the block size and
// the number of gzip members, the result is what the whole text in memory gives, errors included.
TEST(loadtxt, gzip_blocks_give_what_the_whole_text_gives) {
  std::string text = "\xEF\xBB\xBF# header\nskip me\n\n";
  for (int i = 0; i < 300; ++i)
    text += std::to_string(i) + (i % 7 == 0 ? "\t" : " ") + std::to_string(i * 0.5) + (i % 5 == 0 ? "\r\n" : "\n") +
            (i % 11 == 0 ? "# comment\n\n" : "");
  text += std::string(100, ' ') + "1 " + std::string(50, '0') + "2\n9 9"; // a long line; no final newline
  std::string bad = text;
  bad.replace(bad.find("\n150 "), 5, "\n15x ");
  for (const std::string *t : {&text, &bad}) {
    // One gzip member, three, BGZF members of 1000 bytes (lines cross them), BGZF members larger than
    // a block, and BGZF followed by a plain member (read on member by member).
    std::size_t half = t->rfind('\n', t->size() / 2) + 1;
    for (std::string gz : {write_gzip(*t, 1), write_gzip(*t, 3), write_bgzf(*t, 1000), write_bgzf(*t, 60000),
                           write_bgzf(t->substr(0, half), 777, t->substr(half))}) {
      for (std::uint64_t skiprows : {0u, 2u, 5u}) {
        for (std::int64_t max_rows : {-1, 0, 1, 140, 1000}) {
          text_format format;
          format.skiprows = skiprows;
          format.max_rows = max_rows;
          loaded want = load(format, *t, nullptr, 0);
          for (std::size_t block : {1u, 7u, 64u, 1u << 20}) {
            loaded got = load(format, *t, &gz, block);
            std::string where = "block " + std::to_string(block) + ", skiprows " + std::to_string(skiprows) +
                                ", max_rows " + std::to_string(max_rows);
            EXPECT_EQ(got.error, want.error) << where;
            if (!want.error.empty())
              continue; // a failed load's rows are thrown away
            ASSERT_EQ(got.rows, want.rows) << where;
            EXPECT_EQ(got.columns, want.columns) << where;
            EXPECT_EQ(got.values, want.values) << where;
          }
        }
      }
      std::remove(gz.c_str());
    }
  }
  // A damaged BGZF member: an error, whether it is inflated on its own or with others.
  std::string damaged_path = write_bgzf(text, 1000);
  std::string damaged = read_bytes(damaged_path);
  damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 0x55);
  write_bytes(damaged_path, damaged);
  for (std::size_t block : {1u, 1u << 20}) {
    auto blocks = text_blocks::open_gzip(damaged_path, block);
    EXPECT_THROW((void)plan_blocks(blocks, text_format{}), std::invalid_argument) << block;
  }
  std::remove(damaged_path.c_str());

  text_format skip2;
  skip2.skiprows = 2;
  EXPECT_EQ(load(skip2, bad, nullptr, 0).error, "182:1:15x"); // the comparison above can fail
}

// One thread parses rows as it finds them, into room that grows (and moves): the same rows, columns,
// lines and errors as counting them first, whatever skiprows and max_rows.
TEST(loadtxt, one_pass_gives_what_planning_gives) {
  std::string text = "\xEF\xBB\xBF# header\nskip me\n\n";
  for (int i = 0; i < 200000; ++i) { // 4 MB of text: 3 threads; 4 windows of rows
    text += std::to_string(i) + (i % 7 == 0 ? "\t" : " ") + std::to_string(i * 0.5);
    text += (i % 5 == 0 ? "\r\n" : "\n") + std::string(i % 11 == 0 ? "# comment\n\n" : "");
  }
  text += "9 9"; // no final newline
  std::string bad = text;
  bad.replace(bad.find("\n150000 "), 8, "\n1500x0 ");
  for (const std::string *t : {&text, &bad}) {
    for (std::uint64_t skiprows : {0u, 2u, 5u}) {
      for (std::int64_t max_rows : {-1, 0, 1, 14000, 30000}) {
        for (unsigned threads : {1u, 3u}) {
          text_format format;
          format.skiprows = skiprows;
          format.max_rows = max_rows;
          format.threads = threads;
          loaded want = load(format, *t, nullptr, 0);
          loaded got = load(format, *t, nullptr, 0, true);
          std::string where = "skiprows " + std::to_string(skiprows) + ", max_rows " + std::to_string(max_rows) +
                              ", threads " + std::to_string(threads);
          EXPECT_EQ(got.error, want.error) << where;
          if (!want.error.empty())
            continue;
          ASSERT_EQ(got.rows, want.rows) << where;
          EXPECT_EQ(got.columns, want.columns) << where;
          EXPECT_EQ(got.lines, want.lines) << where;
          EXPECT_EQ(got.values, want.values) << where;
          EXPECT_TRUE(got.moves > 1 || got.rows < 70000) << where; // (a window: 65537 rows of 16 bytes)
        }
      }
    }
  }
  text_format skip2;
  skip2.skiprows = 2;
  EXPECT_EQ(load(skip2, bad, nullptr, 0, true).error, "177278:1:1500x0"); // 3 + 150000 + 2 * 13637 lines
}

// Blocks of a stream large enough for several threads are planned, then parsed in parallel chunks:
// the same as the whole text, errors and line counts included.
TEST(loadtxt, large_stream_blocks_are_parsed_on_several_threads) {
  std::string text = "# header\n";
  for (int i = 0; i < 400000; ++i)
    text += std::to_string(i) + " " + std::to_string(i * 0.25) + (i % 13 == 0 ? "\n\n" : "\n");
  std::string bad = text;
  bad.replace(bad.find("\n300000 "), 8, "\n3000x0 ");
  for (const std::string *t : {&text, &bad}) {
    std::string gz = write_bgzf(*t, 60000);
    text_format format;
    format.threads = 2;
    format.skiprows = 1;
    loaded want = load(format, *t, nullptr, 0);
    loaded got = load(format, *t, &gz, 4u << 20); // 4 MiB blocks: 2 threads each
    EXPECT_EQ(got.error, want.error);
    std::remove(gz.c_str());
    if (!want.error.empty())
      continue; // a failed load's rows are thrown away
    EXPECT_EQ(got.rows, want.rows);
    EXPECT_EQ(got.lines, want.lines);
    EXPECT_EQ(got.values, want.values);
  }
  EXPECT_EQ(load(text_format{}, bad, nullptr, 0).error, "323079:1:3000x0"); // 1 + 300000 + 23077 lines before
}

// The fast row path reads no byte past the text, even when the text ends in "\r" right after a long
// last column (ASan checks: the text sits in a buffer of exactly its size).
TEST(loadtxt, text_ending_in_a_carriage_return_is_read_within_bounds) {
  std::string text;
  for (char fill : {'x', 'y', 'z'})
    text += "1.5," + std::string(63, fill) + "\n";
  text += "2.5," + std::string(63, 'w') + "\r";
  auto exact = std::make_unique<char[]>(text.size());
  std::memcpy(exact.get(), text.data(), text.size());
  for (bool select : {false, true}) {
    text_format format;
    format.delimiter = ',';
    std::vector<field_spec> fields{{field_kind::floating, 8, 0, false, "float64"}};
    if (select)
      format.usecols = {0};
    else
      fields.push_back({field_kind::bytes, 64, 8, false, "S64"});
    auto source = text_source::borrow({exact.get(), text.size()}, "cr");
    auto plan = plan_rows(source, format);
    ASSERT_EQ(plan.rows, 4u);
    std::vector<std::byte> out(plan.rows * 72);
    parse_rows(source, format, plan, fields, out.data(), 72);
    double last = 0;
    std::memcpy(&last, out.data() + 3 * 72, 8);
    EXPECT_EQ(last, 2.5);
  }
  // Whitespace mode: the spaces after the last number run up to the final "\r", the text's last byte.
  std::string spaced = "1.5" + std::string(70, ' ') + "\n2.5" + std::string(70, ' ') + "\r";
  auto tight = std::make_unique<char[]>(spaced.size());
  std::memcpy(tight.get(), spaced.data(), spaced.size());
  EXPECT_EQ(load_doubles({tight.get(), spaced.size()}, text_format{}, 1), (std::vector<double>{1.5, 2.5}));
}

// BGZF members are checked, not trusted: a member whose stated size also covers the next one, or
// whose stated uncompressed size is beyond BGZF's 64 KiB, is read member by member like any gzip (the
// rows are all there) or refused; never rows silently lost, never a 4 GiB buffer.
TEST(loadtxt, bgzf_sizes_that_lie_are_not_believed) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += std::to_string(i) + " " + std::to_string(i % 7) + "\n";
  auto read_all = [](const std::string &path) {
    auto blocks = text_blocks::open_gzip(path, 1 << 20);
    std::string all;
    for (auto block = blocks.next(); !block.empty(); block = blocks.next())
      all += block;
    return all;
  };
  text += text.size() % 2 == 0 ? "" : "\n";
  std::size_t half = text.size() / 2; // two members of equal size (and equal ISIZE)
  std::string path = write_bgzf(text, half);
  std::string bytes = read_bytes(path);
  auto bsize = [&bytes](std::size_t at) {
    return static_cast<std::size_t>(static_cast<std::uint8_t>(bytes[at + 16])) |
           static_cast<std::size_t>(static_cast<std::uint8_t>(bytes[at + 17])) << 8;
  };
  std::size_t first = bsize(0) + 1, second = bsize(first) + 1;
  std::string covering = bytes;
  covering[16] = static_cast<char>((first + second - 1) & 0xff); // the first member "holds" both
  covering[17] = static_cast<char>((first + second - 1) >> 8);
  write_bytes(path, covering);
  EXPECT_EQ(read_all(path), text);
  std::string huge = bytes;
  for (int k = 1; k <= 4; ++k) // the first member's ISIZE: 0xFFFFFFF0
    huge[first - k] = static_cast<char>(k == 4 ? 0xF0 : 0xFF);
  write_bytes(path, huge);
  EXPECT_THROW((void)read_all(path), std::invalid_argument);
  std::remove(path.c_str());
}

TEST(loadtxt, corrupt_and_truncated_gzip_are_errors) {
  std::string gz = write_gzip("1 2\n3 4\n", 1);
  std::string bytes = read_bytes(gz);
  for (const std::string &damaged : {bytes.substr(0, bytes.size() - 10), bytes.substr(0, 12) + "garbage!garbage"}) {
    write_bytes(gz, damaged);
    auto blocks = text_blocks::open_gzip(gz, 4);
    EXPECT_THROW((void)plan_blocks(blocks, text_format{}), std::invalid_argument);
  }
  std::remove(gz.c_str());
}

// Counting rows a 64-byte block at a time (delimited text without comments or quotes) must agree with
// the row-by-row scan, which a quote character forces, on texts full of empty lines and CRs.
TEST(loadtxt, counting_lines_in_blocks_agrees_with_the_row_scan) {
  random_numbers next(7);
  const std::vector<std::string> pieces = {"1\t2", "", "\r", "33\t4", "5", "\r\r", " ", "#x"};
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    auto lines = next() % 60;
    for (std::uint64_t k = 0; k < lines; ++k) {
      text += pieces[next() % (i % 2 == 0 ? pieces.size() : pieces.size() - 1)]; // odd: no comments
      text += next() % 3 == 0 ? "\r\n" : "\n";
    }
    if (next() % 2 == 0 && !text.empty())
      text.pop_back();
    for (unsigned threads : {1u, 3u}) {
      text_format fast;
      fast.delimiter = '\t';
      fast.threads = threads;
      text_format scan = fast;
      scan.quote = '"'; // no '"' in the text: same rows, counted one by one
      auto source = text_source::borrow(text, "mem");
      auto a = plan_rows(source, fast);
      auto b = plan_rows(source, scan);
      ASSERT_EQ(a.rows, b.rows) << i;
      ASSERT_EQ(a.lines, b.lines) << i;
      ASSERT_EQ(a.chunks.size(), b.chunks.size());
      for (std::size_t c = 0; c < a.chunks.size(); ++c)
        ASSERT_TRUE(a.chunks[c].rows == b.chunks[c].rows && a.chunks[c].first_line == b.chunks[c].first_line &&
                    a.chunks[c].end == b.chunks[c].end)
            << i;
    }
  }
}

// The longest values of measured columns: the 64-byte mask pass (delimited, unquoted text) agrees with
// the row scan (the same text read with a quote character it does not hold), whatever the columns.
TEST(loadtxt, measured_widths_agree_with_the_row_scan) {
  random_numbers next(11);
  const std::vector<std::string> pieces = {"chr1", "", "\r", "chrUn_KI270302v1", "7", "\r\r", " ", "#x",
                                           std::string(70, 'n'), "HLA-DRB1*15:01:01:01"};
  const std::vector<std::vector<std::int64_t>> column_sets = {{0}, {1}, {2, 0}, {0, 0}, {-1}, {3}, {all_columns}};
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    auto lines = next() % 40;
    for (std::uint64_t k = 0; k < lines; ++k) {
      auto fields = 1 + next() % 4;
      for (std::uint64_t f = 0; f < fields; ++f)
        text += (f ? "\t" : "") + pieces[next() % (i % 2 == 0 ? pieces.size() : 5)]; // odd: mostly plain
      text += next() % 3 == 0 ? "\r\n" : "\n";
    }
    if (next() % 2 == 0 && !text.empty())
      text.pop_back();
    for (const auto &columns : column_sets) {
      text_format fast;
      fast.delimiter = '\t';
      fast.measure = columns;
      text_format scan = fast;
      scan.quote = '"';
      auto source = text_source::borrow(text, "mem");
      auto a = plan_rows(source, fast);
      auto b = plan_rows(source, scan);
      ASSERT_EQ(a.rows, b.rows) << i;
      ASSERT_EQ(a.widths, b.widths) << i << " " << columns[0];
      ASSERT_EQ(a.widths.size(), columns[0] == all_columns ? a.columns : columns.size());
    }
  }
}

TEST(loadtxt, measured_widths_of_a_long_text_on_several_threads) {
  std::string text;
  for (int k = 0; k < 200000; ++k)
    text += (k == 150000 ? "chr1_KI270706v1_random" : k % 7 ? "chr1" : "chrM") + std::string("\t") +
            std::to_string(k) + "\t0.5\t1\t" + (k == 3 ? "1234567" : "2") + "\n";
  text_format format;
  format.delimiter = '\t';
  format.measure = {0, 4, -1};
  for (unsigned threads : {1u, 2u}) {
    format.threads = threads;
    auto source = text_source::borrow(text, "mem");
    auto plan = plan_rows(source, format);
    EXPECT_EQ(plan.rows, 200000u);
    EXPECT_EQ(plan.widths, (std::vector<std::uint32_t>{22, 7, 7}));
    EXPECT_EQ(plan.chunks.size(), threads);
    text_format names = format; // the first column alone: measured in the line count's pass
    names.measure = {0};
    EXPECT_EQ(plan_rows(source, names).widths, (std::vector<std::uint32_t>{22}));
  }
  const std::string path = ::testing::TempDir() + "ndshm-widths-" + std::to_string(::getpid()) + ".tsv";
  write_bytes(path, text);
  const auto split = text.find("chr1_KI");
  EXPECT_EQ(plan_rows(text_source::open(path), format).widths, (std::vector<std::uint32_t>{22, 7, 7}));
  EXPECT_EQ(plan_rows(text_source::open(path, 0, split), format).widths, (std::vector<std::uint32_t>{4, 7, 7}));
  EXPECT_EQ(plan_rows(text_source::open(path, split - 1, UINT64_MAX), format).widths,
            (std::vector<std::uint32_t>{22, 1, 1}));
  std::remove(path.c_str());
  auto gz = write_bgzf(text, 60000);
  auto blocks = text_blocks::open_gzip(gz, 100000);
  EXPECT_EQ(plan_blocks(blocks, format).widths, (std::vector<std::uint32_t>{22, 7, 7}));
  std::remove(gz.c_str());
}

// Values cut to their S field: counted, the first in file order named, the longest per field, on any
// number of threads; on one pass and streams too.
TEST(loadtxt, cut_values_are_reported_in_file_order) {
  std::string text;
  for (int k = 0; k < 100000; ++k)
    text += std::string(k == 70000 ? "chrUn_gl000220" : k % 1000 == 999 ? "chrEBV" : "chr1") + "\t" +
            (k == 90000 ? "ACGTACGT" : "CG") + "\n";
  std::vector<field_spec> fields{{field_kind::bytes, 5, 0, false, "S5"}, {field_kind::bytes, 3, 5, false, "S3"}};
  text_format format;
  format.delimiter = '\t';
  format.truncate_strings = true;
  std::vector<char> out(8 * 100000);
  for (unsigned threads : {1u, 2u}) {
    format.threads = threads;
    auto source = text_source::borrow(text, "t.cov");
    auto plan = plan_rows(source, format);
    auto cut = parse_rows(source, format, plan, fields, reinterpret_cast<std::byte *>(out.data()), 8);
    EXPECT_EQ(cut.values, 100u + 1 + 1);
    EXPECT_EQ(cut.file, "t.cov");
    EXPECT_EQ(cut.line, 1000u);
    EXPECT_EQ(cut.column, 1u);
    EXPECT_EQ(cut.text, "chrEBV");
    EXPECT_EQ(cut.field, 0u);
    EXPECT_EQ(cut.widths, (std::vector<std::uint32_t>{14, 8}));
    EXPECT_EQ(std::string(out.data() + 8 * 70000, 8), std::string("chrUnCG\0", 8));
    EXPECT_EQ(std::string(out.data() + 8 * 90000, 8), std::string("chr1\0ACG", 8));
  }
  auto source = text_source::borrow(text, "t.cov");
  std::vector<std::byte> grown;
  auto plan = parse_one_pass(source, format, fields, 8, test_support::moving_room{grown});
  EXPECT_EQ(plan.truncated.values, 102u);
  EXPECT_EQ(plan.truncated.widths, (std::vector<std::uint32_t>{14, 8}));
  auto gz = write_bgzf(text, 60000);
  auto blocks = text_blocks::open_gzip(gz, 100000);
  auto streamed = parse_stream(blocks, format, fields, 8, test_support::moving_room{grown});
  EXPECT_EQ(streamed.truncated.values, 102u);
  EXPECT_EQ(streamed.truncated.line, 1000u);
  EXPECT_EQ(streamed.truncated.widths, (std::vector<std::uint32_t>{14, 8}));
  std::remove(gz.c_str());
  format.truncate_strings = false;
  try {
    (void)parse_rows(source, format, plan_rows(source, format), fields, reinterpret_cast<std::byte *>(out.data()), 8);
    ADD_FAILURE() << "no error";
  } catch (const parse_error &e) {
    EXPECT_EQ(e.line, 1000u);
    EXPECT_NE(std::string(e.what()).find("S6 holds it"), std::string::npos) << e.what();
  }
}

// Each parsing thread unmaps the file's pages it has parsed (the last unmapping, on one thread, then
// has little left to do). The text stays readable: a second parse maps the pages again.
TEST(loadtxt, parsed_file_pages_are_unmapped_and_map_again_when_read) {
  const std::string path = ::testing::TempDir() + "ndshm-release-" + std::to_string(::getpid()) + ".tsv";
  std::string text;
  for (int i = 0; i < 600000; ++i)
    text += std::to_string(i) + "\t" + std::to_string(i % 1000) + ".25\n";
  {
    std::ofstream(path, std::ios::binary) << text;
  }
  text_format format;
  format.delimiter = '\t';
  format.threads = 2;
  auto source = text_source::open(path);
  std::remove(path.c_str());
  const char *mapped = source.text().data();
  auto plan = plan_rows(source, format); // (reads every page)
  ASSERT_EQ(plan.threads, 2u);
  EXPECT_GT(test_support::smaps_kib(mapped, {"Rss"}), text.size() / 1024 * 9 / 10);
  std::vector<field_spec> fields = {{field_kind::signed_int, 8, 0, false, "int64"},
                                    {field_kind::floating, 8, 8, false, "float64"}};
  for (int round = 0; round < 2; ++round) {
    std::vector<std::int64_t> out(2 * plan.rows);
    parse_rows(source, format, plan, fields, reinterpret_cast<std::byte *>(out.data()), 16);
    // Left: at most the pages where the chunks start and end.
    EXPECT_LE(test_support::smaps_kib(mapped, {"Rss"}), 2 * 4 * plan.chunks.size()) << round;
    for (std::size_t i = 0; i < plan.rows; i += 997) {
      ASSERT_EQ(out[2 * i], static_cast<std::int64_t>(i));
      ASSERT_EQ(std::bit_cast<double>(out[2 * i + 1]), static_cast<double>(i % 1000) + 0.25);
    }
  }
}

TEST(loadtxt, rows_at_most_bounds_the_rows_of_the_tightest_texts) {
  // Each row as short as its fields allow: empty S fields between tabs, one-character rows, no final newline.
  for (const auto &[text, fields, rows] : std::vector<std::tuple<std::string, std::size_t, std::uint64_t>>{
           {"\t\t\t\t\n\t\t\t\t\n\t\t\t\t", 5, 3}, {"1\n2\n3\n4", 1, 4}, {"1 2\n3 4\n", 2, 2}, {"", 3, 0}}) {
    auto source = ndshm::text_source::borrow(text, "t");
    ndshm::text_format format;
    EXPECT_GE(ndshm::rows_at_most(source, format, fields), rows) << text;
    EXPECT_LE(ndshm::rows_at_most(source, format, fields), text.size() / fields + 1) << text;
    format.max_rows = 1;
    EXPECT_LE(ndshm::rows_at_most(source, format, fields), 1U);
  }
}
