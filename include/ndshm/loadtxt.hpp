// The text loader: numpy.loadtxt's grammar, parsed on all cores straight into a caller's array.
//
// On several threads, two phases so that the caller owns the allocation (shared or private memory):
//   plan = plan_rows(source, format)      counts rows per chunk in parallel (and the first row's columns)
//   parse_rows(source, format, plan, fields, out, row_stride)   each thread fills its own rows
// On one thread (parses_in_one_pass), and for streams, rows are parsed as they are found into memory
// the caller grows: parse_one_pass, parse_stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ndshm {

/// The bytes to parse: a mapped file, decompressed data, or text the caller keeps alive.
class text_source {
public:
  /// Maps a file (page cache, no copy); "*.gz" is decompressed into memory. Throws std::system_error.
  [[nodiscard]] static text_source open(const std::string &path);
  /// The lines of a plain file that start within bytes [begin, end) (a file split into windows: each
  /// line belongs to exactly one). Throws std::invalid_argument for a compressed file.
  [[nodiscard]] static text_source open(const std::string &path, std::uint64_t begin, std::uint64_t end);
  /// Text owned by the caller, shown as name in errors. at_start: a byte order mark there is skipped.
  [[nodiscard]] static text_source borrow(std::string_view text, std::string name, bool at_start = true);

  [[nodiscard]] std::string_view text() const noexcept { return m_text; }
  [[nodiscard]] const std::string &name() const noexcept { return m_name; }
  /// Done with the text in [begin, end) for now: a mapped file's pages there are unmapped (they map
  /// again if read); text in memory stays as it is.
  void release(const char *begin, const char *end) const noexcept;

private:
  std::shared_ptr<void> m_owner; // mapping or buffer behind m_text
  std::string_view m_text;
  std::string m_name;
  bool m_mapped = false; // m_text lies in a file mapping
};

/// How one output field is converted and where it is stored within a row.
enum class field_kind : std::uint8_t { signed_int, unsigned_int, floating, boolean, bytes };

struct field_spec {
  field_kind kind = field_kind::floating;
  std::uint32_t size = 8;   ///< bytes: 1/2/4/8 for numbers (4 or 8 for floats), the length of an S field
  std::uint32_t offset = 0; ///< within the row
  bool big_endian = false;
  std::string type_name = "float64"; ///< shown in errors
};

/// The grammar of the text (numpy.loadtxt's keywords).
struct text_format {
  char delimiter = 0;            ///< 0: runs of whitespace separate fields
  std::string comment = "#";     ///< empty: no comments; otherwise one character
  char quote = 0;                ///< 0: no quoting
  std::uint64_t skiprows = 0;    ///< lines skipped first, whatever they hold
  std::int64_t max_rows = -1;    ///< rows of data to read; -1: all
  std::vector<std::int64_t> usecols; ///< columns to read, negative from the end; empty: all
  bool truncate_strings = false; ///< cut too long S values (numpy's behaviour; see truncation_report); default: an error
  /// Columns whose longest value plan_rows finds (text_plan::widths, in this order; negative from
  /// the end of each row): the width of an S field given without one. {all_columns}: every column
  /// of the first row.
  std::vector<std::int64_t> measure;
  unsigned threads = 0;          ///< 0: all cores
  std::uint64_t first_line = 1;  ///< line number of the text's first line (a block of a stream starts later)
};

/// format.measure's one entry that stands for every column of the first row.
inline constexpr std::int64_t all_columns = INT64_MIN;

/// S values cut to their field's width (text_format::truncate_strings): how many, the first in file
/// order, and per field the longest.
struct truncation_report {
  std::uint64_t values = 0; ///< values cut
  std::string file;         ///< where the first was: file, 1-based line and byte column
  std::uint64_t line = 0;
  std::uint64_t column = 0;
  std::string text;      ///< the first cut value (shortened past 60 bytes)
  std::size_t field = 0; ///< the index of its field
  std::vector<std::uint32_t> widths; ///< per field: the longest value cut (0: none was); empty if none
  /// Adds what a later part of the text cut.
  void merge(const truncation_report &later);
};

/// A gzip file read as blocks of whole lines, so that memory stays bounded whatever its size (the
/// loader parses it in one pass into memory that grows: parse_stream).
class text_blocks {
public:
  /// Opens (maps) a gzip file, concatenated members included; blocks of about block_bytes.
  [[nodiscard]] static text_blocks open_gzip(const std::string &path, std::size_t block_bytes = 8u << 20);
  text_blocks(text_blocks &&) noexcept;
  text_blocks &operator=(text_blocks &&) noexcept;
  ~text_blocks();

  /// Back to the first line.
  void rewind();
  /// The next block: whole lines (the file's last may lack its newline); empty at the end. The view
  /// is valid until the next call. Throws std::invalid_argument for corrupt or truncated data.
  [[nodiscard]] std::string_view next();
  [[nodiscard]] const std::string &name() const noexcept;
  /// True for BGZF (members inflated on all cores); false when one thread inflates.
  [[nodiscard]] bool inflates_in_parallel() const noexcept;

private:
  struct state;
  explicit text_blocks(std::unique_ptr<state> s);
  std::unique_ptr<state> m;
};

/// Where the rows are: chunk boundaries and counts (from plan_rows).
struct text_plan {
  struct chunk {
    std::size_t begin = 0, end = 0; ///< byte range in the text, starting at a row
    std::uint64_t first_row = 0;    ///< index of the chunk's first row in the output
    std::uint64_t rows = 0;
    std::uint64_t first_line = 0;   ///< 1-based line number of begin
  };
  std::vector<chunk> chunks; ///< in text order; threads take them in turn
  unsigned threads = 1;      ///< to parse them on
  std::uint64_t rows = 0;
  std::uint64_t columns = 0; ///< fields in the first row (0 if there is none)
  std::uint64_t lines = 0;   ///< lines consumed, skipped ones included
  std::vector<std::uint32_t> widths; ///< plan_rows, plan_blocks: the longest value of each format.measure column
  truncation_report truncated;       ///< parse_one_pass, parse_stream: the values cut
};

/// Bad input: where (file, 1-based line and column), what was found, and what was expected.
class parse_error : public std::invalid_argument {
public:
  parse_error(std::string file, std::uint64_t line, std::uint64_t column, std::string text,
              std::string expected, const std::string &message);
  std::string file;
  std::uint64_t line;
  std::uint64_t column; ///< 1-based byte column of the field's start (0: the whole line)
  std::string text;     ///< the offending text, shortened
  std::string expected;
  /// Text that numpy.loadtxt reads by rules this parser lacks (a byte past ASCII, which numpy decodes;
  /// a lone '\r', a line end for numpy): no error there, so a caller after numpy's answer asks numpy.
  bool other_grammar = false;
};

[[nodiscard]] text_plan plan_rows(const text_source &source, const text_format &format);

/// Fills plan.rows rows of out (row_stride bytes apart); returns the values it cut. Throws parse_error
/// for the first bad row in file order, whatever the thread count (std::bad_alloc instead if memory
/// ran short before it).
truncation_report parse_rows(const text_source &source, const text_format &format, const text_plan &plan,
                std::span<const field_spec> fields, std::byte *out, std::uint64_t row_stride);

/// True when one thread parses the text (threads 1, a text too short for two threads, max_rows,
/// quoting) and it is 1 MiB or more, or max_rows is set: then parse_one_pass reads it without counting
/// its rows first.
[[nodiscard]] bool parses_in_one_pass(const text_source &source, const text_format &format);

/// At most how many rows the text holds for these fields: every row takes a byte per field at least
/// (a delimiter or separator after each but the last, then its line end): parse_one_pass maps no
/// output room past what a small file can fill.
[[nodiscard]] std::uint64_t rows_at_most(const text_source &source, const text_format &format,
                                         std::size_t fields) noexcept;

/// Output memory that grows as rows are found: room(nbytes) returns the output's first byte with at
/// least nbytes usable (it may move from call to call; the rows already parsed move with it).
using output_room = std::function<std::byte *(std::uint64_t nbytes)>;

/// Parses text in one pass on the calling thread into room the caller grows; returns rows, columns and
/// lines as plan_rows would (no chunks).
text_plan parse_one_pass(const text_source &source, const text_format &format,
                         std::span<const field_spec> fields, std::uint64_t row_stride, const output_room &room);

/// plan_rows over every block of a stream (no quotes: a row is a line): rows, columns and lines. With
/// format.max_rows 0 it reads only up to the first row (its column count).
[[nodiscard]] text_plan plan_blocks(text_blocks &blocks, const text_format &format);

/// Parses a stream in one pass: each block is parsed (planned first when on several threads) into
/// room the caller grows. Returns rows, columns and lines as plan_blocks does.
text_plan parse_stream(text_blocks &blocks, const text_format &format, std::span<const field_spec> fields,
                       std::uint64_t row_stride, const output_room &room);

} // namespace ndshm
