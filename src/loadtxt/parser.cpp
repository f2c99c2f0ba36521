// plan_rows and parse_rows: rows found and parsed in parallel chunks cut at line ends; parse_one_pass
// and parse_stream: rows parsed as they are found, into memory that grows.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "detail/parallel.hpp"
#include "detail/platform.hpp"
#include "loadtxt/fields.hpp"
#include "ndshm/loadtxt.hpp"

namespace ndshm {

parse_error::parse_error(std::string file_, std::uint64_t line_, std::uint64_t column_, std::string text_,
                         std::string expected_, const std::string &message)
    : std::invalid_argument(message), file(std::move(file_)), line(line_), column(column_),
      text(std::move(text_)), expected(std::move(expected_)) {}

void truncation_report::merge(const truncation_report &later) {
  if (later.values == 0)
    return;
  if (values == 0) {
    *this = later;
    return;
  }
  values += later.values;
  widths.resize(std::max(widths.size(), later.widths.size()), 0);
  for (std::size_t f = 0; f < later.widths.size(); ++f)
    widths[f] = std::max(widths[f], later.widths[f]);
}

namespace {

using detail::is_space;

// The hot loops, compiled twice: for x86-64-v3 (AVX2, BMI2, POPCNT: Haswell and later) and for the
// baseline; the loader picks one when the library loads (GCC/Clang target_clones, an ifunc).
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define NDSHM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NDSHM_CLONES
#endif

/// The comment character, or '\n' when there is none: '\n' never stands inside a line, so a search
/// for it there finds nothing.
char comment_char(const text_format &format) { return format.comment.empty() ? '\n' : format.comment[0]; }

// Below this, starting threads costs more than it saves.
constexpr std::size_t bytes_per_thread = 1 << 20;
// Chunks of text a thread parses: at most 8, of 16 MiB at least (see plan_rows). The rows of a
// chunk share no huge page with another's, so smaller chunks would leave more rows on small pages.
constexpr std::size_t chunks_per_thread = 8;
constexpr std::size_t bytes_per_chunk = 16 << 20;

/// One field of a row: its text, and whether it was quoted (then "" stands for ").
struct span {
  std::string_view text;
  std::size_t quoted_escapes = 0; // a full word: a bool here cost a store-forwarding stall per field (perf)
};

/// A row: its content (comment and line end removed) and the byte after its line end.
struct row {
  const char *begin;
  const char *end;
  const char *next;
  std::uint64_t lines; ///< physical lines it spans (more than 1 only with quoted newlines)
};

class scanner {
public:
  explicit scanner(const text_format &format) : m_format(format) {}

  /// The row starting at p (p < end of text).
  [[nodiscard]] row read(const char *p, const char *end) const noexcept {
    if (m_format.quote != 0)
      return read_quoted(p, end);
    row r = read_line(p, end);
    if (!m_format.comment.empty()) {
      const char *c = static_cast<const char *>(
          std::memchr(r.begin, m_format.comment[0], static_cast<std::size_t>(r.end - r.begin)));
      if (c != nullptr)
        r.end = c;
    }
    return r;
  }

private:
  /// The line starting at p, its line end removed (read() then cuts the comment).
  [[nodiscard]] row read_line(const char *p, const char *end) const noexcept {
    const char *nl = static_cast<const char *>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char *line_end = nl != nullptr ? nl : end;
    const char *content_end = line_end;
    if (content_end > p && content_end[-1] == '\r')
      --content_end;
    return {p, content_end, nl != nullptr ? nl + 1 : end, 1};
  }

public:
  /// numpy skips empty lines; with whitespace as delimiter, lines of only whitespace too.
  [[nodiscard]] bool blank(const row &r) const noexcept {
    if (m_format.delimiter != 0)
      return r.begin == r.end;
    return std::all_of(r.begin, r.end, is_space);
  }

  /// Splits a row into fields; returns false for an unterminated quote.
  bool split(const row &r, std::vector<span> &fields) const {
    fields.clear();
    const char *p = r.begin;
    const char q = m_format.quote;
    if (m_format.delimiter == 0) {
      for (;;) {
        while (p < r.end && is_space(*p))
          ++p;
        if (p == r.end)
          return true;
        if (q != 0 && *p == q) {
          if (!quoted(p, r.end, fields))
            return false;
          continue;
        }
        const char *start = p;
        while (p < r.end && !is_space(*p))
          ++p;
        fields.push_back({{start, static_cast<std::size_t>(p - start)}, false});
      }
    }
    const char d = m_format.delimiter;
    if (q == 0) {
      // One pass over the row: fields are short, so a byte loop beats a memchr call per field.
      const char *start = p;
      for (; p < r.end; ++p) {
        if (*p == d) {
          fields.push_back({{start, static_cast<std::size_t>(p - start)}, false});
          start = p + 1;
        }
      }
      fields.push_back({{start, static_cast<std::size_t>(r.end - start)}, false});
      return true;
    }
    for (;;) {
      if (p < r.end && *p == q) {
        if (!quoted(p, r.end, fields))
          return false;
        // After the closing quote, the field runs on to the delimiter (numpy keeps that text).
        const char *rest = static_cast<const char *>(std::memchr(p, d, static_cast<std::size_t>(r.end - p)));
        if (rest == nullptr)
          return true;
        p = rest + 1;
        continue;
      }
      const char *hit = static_cast<const char *>(std::memchr(p, d, static_cast<std::size_t>(r.end - p)));
      const char *stop = hit != nullptr ? hit : r.end;
      fields.push_back({{p, static_cast<std::size_t>(stop - p)}, false});
      if (hit == nullptr)
        return true;
      p = hit + 1;
    }
  }

private:
  bool quoted(const char *&p, const char *end, std::vector<span> &fields) const {
    const char q = m_format.quote;
    const char *start = ++p;
    bool escapes = false;
    for (;;) {
      const char *close = static_cast<const char *>(std::memchr(p, q, static_cast<std::size_t>(end - p)));
      if (close == nullptr)
        return false;
      if (close + 1 < end && close[1] == q) { // "" inside quotes: one quote character
        escapes = true;
        p = close + 2;
        continue;
      }
      fields.push_back({{start, static_cast<std::size_t>(close - start)}, escapes});
      p = close + 1;
      return true;
    }
  }

  [[nodiscard]] row read_quoted(const char *p, const char *end) const noexcept {
    // Quotes may hold delimiters, comment characters and newlines: walk byte by byte.
    const char q = m_format.quote;
    const char comment = m_format.comment.empty() ? '\0' : m_format.comment[0];
    bool inside = false;
    std::uint64_t lines = 1;
    const char *content_end = nullptr;
    const char *s = p;
    for (; s < end; ++s) {
      char c = *s;
      if (c == q) {
        inside = !inside;
      } else if (!inside && c == '\n') {
        break;
      } else if (c == '\n') {
        ++lines;
      } else if (!inside && !m_format.comment.empty() && c == comment && content_end == nullptr) {
        content_end = s;
      }
    }
    const char *line_end = s;
    if (content_end == nullptr) {
      content_end = line_end;
      if (content_end > p && content_end[-1] == '\r')
        --content_end;
    }
    return {p, content_end, s < end ? s + 1 : end, lines};
  }

  const text_format &m_format;
};

unsigned thread_count(const text_format &format, std::size_t bytes) {
  unsigned cores = format.threads != 0 ? format.threads : std::max(1u, std::thread::hardware_concurrency());
  auto useful = static_cast<unsigned>(std::max<std::size_t>(1, bytes / bytes_per_thread));
  return format.quote != 0 ? 1u : std::min(cores, useful);
}

/// A byte as "\\xNN" (the text of an error must be valid UTF-8: Python decodes it).
std::string byte_name(char c) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto b = static_cast<unsigned char>(c);
  return {'\\', 'x', hex[b >> 4], hex[b & 15]};
}

std::string shorten(std::string_view text) {
  return text.size() <= 60 ? std::string(text) : std::string(text.substr(0, 57)) + "...";
}

/// The common row, parsed in one pass with no per-byte loop: each column's end found by its own
/// conversion (digits 8 at a time) or, for text, 16 bytes at a time. No quotes; columns as many as
/// the first row's, in order (usecols pick some of them). Any other row (comments, spaces around
/// numbers, exponents, nan, blank lines, long numbers, bad text) returns nullptr and goes to the
/// general path, which parses it again and words any error: both give the same values.
class row_program {
public:
  /// fields[f] is stored from column column_of[f] (strictly increasing); wide from wide_stores.
  row_program(const text_format &format, std::span<const field_spec> fields, std::span<const std::size_t> column_of,
              std::size_t columns, std::span<const char> wide)
      : m_delimiter(format.delimiter), m_comment(comment_char(format)), m_steps(columns) {
    for (std::size_t f = 0; f < fields.size(); ++f)
      m_steps[column_of[f]] = step_for(fields[f], wide[f] != 0);
    if (m_delimiter != 0) {
      m_run = pick<true>(columns, std::make_index_sequence<12>());
      pick_layout<true>(preset_layouts{});
      pick_layout<true>(float64_layouts{});
    } else {
      m_run = pick<false>(columns, std::make_index_sequence<12>());
      pick_layout<false>(float64_layouts{});
    }
  }

  /// Parses rows at p into dest (stride bytes apart) while they take the fast path: at most n rows,
  /// none starting at or past stop. Returns how many; p ends past them.
  std::uint64_t parse_run(const char *&p, const char *stop, const char *limit, std::byte *dest, std::uint64_t stride,
                          std::uint64_t n) const noexcept {
    return m_run(*this, p, stop, limit, dest, stride, n);
  }

private:
  /// What a column becomes: little-endian 32/64-bit ints and floats have their own (the common
  /// dtypes), other numbers go through the field's spec.
  enum class how : std::uint8_t { skip, text, int32, int64, integer, float32, float64, floating };

  /// A row layout compiled as a run of its own: each column's conversion fixed, no dispatch on its
  /// step. For the presets' formats (python/ndshm/presets.py; usecols resolved, delimited text), with
  /// whatever options or dtype spelling give the same steps. bench/parse_instructions.sh: 421 -> 342
  /// instructions per coverage row; bench/parse_bench.cpp, 300 MB of coverage text, Release build,
  /// 10 interleaved rounds, median: 0.448 s vs 0.517 s dispatching on each column's step.
  template <how... Kinds> struct layout {
    static constexpr std::array<how, sizeof...(Kinds)> kinds{Kinds...};
    static constexpr bool packed = false; // each column's output offset read from its step
  };
  /// numpy.loadtxt's default dtype, float64 in every column, with the columns stored one after another
  /// (offsets 8c, compiled in), for each column count up to 12, whitespace-separated or delimited.
  /// Matrix rows (10 columns; callgrind, Release build, 20,000 rows): 1204.7 instructions per row
  /// dispatching on each column's step, 1088.8 so; bench/parse_bench.cpp, 50 MB, 30 alternations:
  /// median 0.915 of the time (quartiles 0.831 and 1.037). 24 runs more in the library, about 100 KB.
  template <class Columns> struct float64_row;
  template <std::size_t... C> struct float64_row<std::index_sequence<C...>> {
    static constexpr std::array<how, sizeof...(C)> kinds{(static_cast<void>(C), how::float64)...};
    static constexpr bool packed = true;
  };
  template <std::size_t... N>
  static auto float64_rows(std::index_sequence<N...>) -> std::tuple<float64_row<std::make_index_sequence<N + 1>>...>;
  using float64_layouts = decltype(float64_rows(std::make_index_sequence<12>()));
  using preset_layouts = std::tuple<
      layout<how::text, how::int32, how::float32, how::int32, how::int32>,                      // coverage5
      layout<how::text, how::int32, how::skip, how::float32, how::int32, how::int32>,           // bismark-cov
      layout<how::text, how::int32, how::text, how::int32, how::int32, how::text, how::text>, // bismark-cytosine
      layout<how::text, how::int32, how::int32, how::float32>>;                                 // bedgraph
  struct step {
    how what = how::skip; // skip: a column usecols leaves out
    bool wide = false;
    std::uint32_t offset = 0;
    const field_spec *field = nullptr;
  };

  /// What parse reads for every row, copied by run into a local of its own: stores through the row's
  /// std::byte pointer may alias any object whose address has escaped, the row_program's members
  /// included, so reading them in place made the compiler reload a column's step after every store
  /// (bench/parse_instructions.sh: 463.5 instructions per coverage row before, 440.2 with the frame).
  /// Built per run call, also after each row the general path takes: 14 instructions more per row
  /// (0.7%) on a file where every row has a comment (callgrind, whole program).
  template <std::size_t Columns> struct frame {
    explicit frame(const row_program &program)
        : delimiter(program.m_delimiter), comment(program.m_comment), all(program.m_steps.data()),
          count(program.m_steps.size()) {
      if constexpr (Columns != 0)
        std::copy_n(all, Columns, own.begin());
    }
    [[nodiscard]] std::size_t columns() const noexcept { return Columns != 0 ? Columns : count; }
    [[nodiscard]] const step &step_at(std::size_t c) const noexcept { return Columns != 0 ? own[c] : all[c]; }

    char delimiter;
    char comment;
    const step *all;
    std::size_t count;
    std::array<step, Columns> own{}; // (Columns 0: all the program's steps, in place)
#if defined(__SSE2__)
    // text_end's 16-byte comparisons: the line end, carriage return, comment character, delimiter.
    __m128i newlines = _mm_set1_epi8('\n'), returns = _mm_set1_epi8('\r'), marks = _mm_set1_epi8(comment),
            delimiters = _mm_set1_epi8(delimiter);
#endif
  };

  using run_fn = std::uint64_t (*)(const row_program &, const char *&, const char *, const char *, std::byte *,
                                   std::uint64_t, std::uint64_t) noexcept;

  /// A run of rows, compiled for each column count up to 12 (0: any) and delimiter mode: the column
  /// loop unrolled, each column's conversion is a branch of its own, always taken the same way.
  /// Kept out of line: inlined into the general path's loop, its values were spilled to the stack (perf).
  template <std::size_t Columns, bool Delimited, class Layout = void> // Layout: a layout<...>, or none
  [[gnu::noinline]] static std::uint64_t run(const row_program &self, const char *&p, const char *stop,
                                             const char *limit, std::byte *dest, std::uint64_t stride,
                                             std::uint64_t n) noexcept {
    const frame<Columns> f(self);
    const char *q = p;
    std::uint64_t k = 0;
    for (; k < n && q < stop; ++k, dest += stride) {
      const char *next = parse<Columns, Delimited, Layout>(f, q, limit, dest);
      if (next == nullptr)
        break;
      q = next;
    }
    p = q;
    return k;
  }

  template <bool Delimited, std::size_t... Columns>
  static run_fn pick(std::size_t columns, std::index_sequence<Columns...>) noexcept {
    run_fn chosen = &run<0, Delimited>;
    ((chosen = columns == Columns + 1 ? &run<Columns + 1, Delimited> : chosen), ...);
    return chosen;
  }

  template <bool Delimited, class... Layouts> void pick_layout(std::tuple<Layouts...>) noexcept {
    auto same = [this](const auto &kinds, bool packed) {
      std::size_t c = 0;
      return std::equal(kinds.begin(), kinds.end(), m_steps.begin(), m_steps.end(), [&](how kind, const step &s) {
        const bool placed = !packed || s.offset == 8 * c;
        ++c;
        return s.what == kind && placed;
      });
    };
    (void)((same(Layouts::kinds, Layouts::packed) && (m_run = &run<Layouts::kinds.size(), Delimited, Layouts>)) ||
           ...);
  }

  /// Parses the row at p into dest; returns the start of the next row, or nullptr (see above).
  /// Reads at most 64 bytes past any byte it looks at; limit: the end of readable text.
  template <std::size_t Columns, bool Delimited, class Layout>
  [[nodiscard, gnu::always_inline]] static const char *parse(const frame<Columns> &f, const char *p, const char *limit,
                                                            std::byte *dest) noexcept {
    // Every column may read 64 bytes from its start. A number and its separator move on by at most
    // 19 bytes, so one check of the whole row's room covers them all (a check per column cost 10% in
    // bench/prototypes/spec.cpp, -DLIMIT); only text, skipped columns and runs of spaces, of any
    // length, check again, for the columns after them. Compiled for any column count, every column
    // checks: for a wide row, the row's room would send the last rows of every block to the general path.
    auto short_of = [&](const char *at, std::size_t columns_left) {
      return Columns != 0 ? limit - at < static_cast<std::ptrdiff_t>(64 * columns_left) : limit - at < 64;
    };
    if (short_of(p, Delimited ? Columns : 1))
      return nullptr;
    // A blank line (in whitespace mode, skip_spaces may run out of text). Delimited, a row of two columns
    // or more fails on it anyway: its first separator is not there.
    if (Delimited ? Columns < 2 && (*p == '\n' || (*p == '\r' && p[1] == '\n'))
                  : (p = skip_spaces(p, limit)) == nullptr)
      return nullptr;
    if (!Delimited && short_of(p, Columns))
      return nullptr;
    bool ok = true;
    const std::size_t last = f.columns() - 1;
#pragma GCC unroll 12
    for (std::size_t c = 0; c <= last; ++c) {
      if (Columns == 0 && short_of(p, 1))
        return nullptr;
      const step &s = f.step_at(c);
      const char *const start = p;
      std::byte *out = dest + s.offset;
      how what = s.what;
      if constexpr (!std::is_void_v<Layout>) {
        what = Layout::kinds[c];
        if constexpr (Layout::packed)
          out = dest + 8 * c;
      }
      switch (what) {
      case how::float32:
      case how::float64:
      case how::floating: {
        double value = 0;
        p = detail::scan_plain_decimal(p, value);
        if (p == nullptr)
          return nullptr;
        if (what == how::float32)
          detail::store(out, static_cast<float>(value), false);
        else if (what == how::float64)
          detail::store(out, value, false);
        else
          detail::store_floating(*s.field, value, out);
        break;
      }
      case how::int32:
      case how::int64:
      case how::integer: {
        bool negative = false;
        std::uint64_t magnitude = 0;
        p = detail::scan_plain_integer(p, negative, magnitude);
        if (p == nullptr)
          return nullptr;
        if (what == how::integer) {
          ok &= detail::store_integer(*s.field, negative, magnitude, out);
        } else { // 15 digits at most: magnitude < 2^50 fits an int64; an int32 is checked
          ok &= what == how::int64 || magnitude <= 0x7FFFFFFFu + std::uint64_t{negative};
          std::uint64_t bits = negative ? 0 - magnitude : magnitude;
          if (what == how::int32)
            detail::store(out, static_cast<std::uint32_t>(bits), false);
          else
            detail::store(out, bits, false);
        }
        break;
      }
      case how::text:
        p = store_text<Delimited>(p, limit, f, *s.field, s.wide, out);
        if (p == nullptr || short_of(p, last - c + 1))
          return nullptr;
        ok &= Delimited || p != start; // (in whitespace mode, a column holds text: a number always does)
        break;
      case how::skip:
        p = text_end<Delimited>(p, limit, f);
        if (p == nullptr || short_of(p, last - c + 1))
          return nullptr;
        ok &= Delimited || p != start;
        break;
      }
      // The separator: the delimiter (or, in whitespace mode, a run of spaces) between columns, the
      // line end after the last. In whitespace mode every column holds text.
      if (Delimited) {
        if (c == last && *p == '\r') // (p[1] is readable: the room checks leave 45 bytes at least)
          ++p;
        ok &= *p == (c == last ? '\n' : f.delimiter);
        ++p;
      } else {
        // Mostly one ' ', then the next column's first byte (above ' '): no loop over the spaces, and
        // no room check (the row's covers a number and one space).
        const char *after = p + (*p == ' ');
        if (static_cast<unsigned char>(*after) <= ' ') {
          after = skip_spaces(after, limit);
          if (after == nullptr || (c != last && short_of(after, last - c)))
            return nullptr;
        }
        if (c == last && *after == '\r' && limit - after >= 2) // "\r\n" ends the line; "\r" alone: general path
          ++after;
        ok &= c == last ? *after == '\n' : after != p;
        p = after + (c == last);
      }
    }
    return ok ? p : nullptr;
  }

  static step step_for(const field_spec &field, bool wide) {
    step s{how::text, wide, field.offset, &field};
    const bool native = !field.big_endian;
    switch (field.kind) {
    case field_kind::floating:
      s.what = native && field.size == 4 ? how::float32 : native && field.size == 8 ? how::float64 : how::floating;
      break;
    case field_kind::signed_int:
      s.what = native && field.size == 4 ? how::int32 : native && field.size == 8 ? how::int64 : how::integer;
      break;
    case field_kind::unsigned_int:
    case field_kind::boolean:
      s.what = how::integer;
      break;
    case field_kind::bytes:
      break;
    }
    return s;
  }

  /// Where a column's text ends: at the separator, line end, carriage return or comment character,
  /// 16 bytes at a time; nullptr when the text ends first.
  template <bool Delimited, class Frame>
  [[nodiscard]] static const char *text_end(const char *p, const char *limit, const Frame &f) noexcept {
#if defined(__SSE2__)
    for (; limit - p >= 16; p += 16)
      if (unsigned mask = stops_in<Delimited>(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)), f); mask != 0)
        return p + std::countr_zero(mask);
    return nullptr;
#else
    for (; p < limit; ++p)
      if (*p == '\n' || *p == '\r' || *p == f.comment || (Delimited ? *p == f.delimiter : is_space(*p)) ||
          static_cast<unsigned char>(*p) >= 0x80)
        return p;
    return nullptr;
#endif
  }

#if defined(__SSE2__)
  /// The bytes of v that end a column's text (text_end's), as a bit mask.
  template <bool Delimited, class Frame>
  [[nodiscard, gnu::always_inline]] static unsigned stops_in(__m128i v, const Frame &f) noexcept {
    __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(v, f.newlines), _mm_cmpeq_epi8(v, f.marks));
    stop = _mm_or_si128(stop, _mm_cmpeq_epi8(v, f.returns));
    stop = _mm_or_si128(stop, v); // a byte past ASCII (its top bit): the general path says numpy reads it
    if constexpr (Delimited) {
      stop = _mm_or_si128(stop, _mm_cmpeq_epi8(v, f.delimiters));
    } else { // ' ' or '\t'..'\r' (is_space)
      __m128i control = _mm_sub_epi8(v, _mm_set1_epi8('\t'));
      stop = _mm_or_si128(stop, _mm_cmpeq_epi8(_mm_min_epu8(control, _mm_set1_epi8(4)), control));
      stop = _mm_or_si128(stop, _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
    }
    return static_cast<unsigned>(_mm_movemask_epi8(stop));
  }
#endif

  /// Stores an S field's text (then zeros); returns its end, or nullptr if it is too long.
  template <bool Delimited, class Frame>
  [[nodiscard]] static const char *store_text(const char *p, const char *limit, const Frame &f, const field_spec &field,
                                              bool wide, std::byte *out) noexcept {
#if defined(__SSE2__)
    if (wide && limit - p >= 16) { // the common case: the text ends within the 16 bytes it is stored from
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
      if (unsigned mask = stops_in<Delimited>(v, f); mask != 0) {
        const auto length = static_cast<unsigned>(std::countr_zero(mask));
        if (length > field.size)
          return nullptr;
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out), _mm_andnot_si128(detail::bytes_from(length), v));
        return p + length;
      }
    }
#endif
    const char *end = text_end<Delimited>(p, limit, f);
    if (end == nullptr)
      return nullptr;
    auto length = static_cast<std::size_t>(end - p);
    if (length > field.size)
      return nullptr;
#if defined(__SSE2__)
    if (wide) { // 16 bytes stored, the text's then zeros (see wide_stores)
      static constexpr char index[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
      __m128i keep = _mm_cmplt_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(index)),
                                    _mm_set1_epi8(static_cast<char>(length)));
      __m128i text = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
      _mm_storeu_si128(reinterpret_cast<__m128i *>(out), _mm_and_si128(text, keep));
      return end;
    }
#endif
    std::memcpy(out, p, length);
    std::memset(out + length, 0, field.size - length);
    return end;
  }

  /// Past the spaces at p (whitespace mode: ' ', '\t', '\v', '\f'; not '\r', which may only end a line
  /// here, before '\n'); nullptr when the text ends. The list is is_space's without '\r', spelled out:
  /// is_space(c) && c != '\r' costs 18 more instructions per matrix row (bench/parse_instructions.sh).
  [[nodiscard]] static const char *skip_spaces(const char *p, const char *limit) noexcept {
    for (; p < limit; ++p)
      if (*p != ' ' && *p != '\t' && *p != '\v' && *p != '\f')
        return p;
    return nullptr;
  }

  char m_delimiter;
  char m_comment;
  std::vector<step> m_steps; // one per column
  run_fn m_run = nullptr;
};

/// 64 bytes at p as bit masks: where '\n', '\r' and the comment character stand ('\n' for none: no marks).
inline void line_masks(const char *p, char comment, std::uint64_t &newlines, std::uint64_t &returns,
                       std::uint64_t &marks) noexcept {
  newlines = returns = marks = 0;
#if defined(__SSE2__)
  // '\r' and the comment character are mostly absent: one test for both over the 64 bytes, and their
  // masks only where one stands. Coverage text, Release build (callgrind): 68 instructions per 64 bytes
  // with three masks each time, 56 this way; plan_rows over 1 GB on two threads (bench/parse_bench.cpp,
  // 4 interleaved rounds): 0.087-0.119 s, then 0.079-0.088 s.
  const __m128i mark = _mm_set1_epi8(comment == '\n' ? '\r' : comment);
  __m128i v[4];
  __m128i odd = _mm_setzero_si128();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * k));
    auto nl = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], _mm_set1_epi8('\n'))));
    newlines |= std::uint64_t{nl} << (16 * k);
    odd = _mm_or_si128(odd, _mm_or_si128(_mm_cmpeq_epi8(v[k], _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v[k], mark)));
  }
  if (_mm_movemask_epi8(odd) == 0) [[likely]]
    return;
  for (int k = 0; k < 4; ++k) {
    auto cr = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], _mm_set1_epi8('\r'))));
    auto found = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], mark)));
    returns |= std::uint64_t{cr} << (16 * k);
    marks |= std::uint64_t{found} << (16 * k);
  }
#else
  for (int k = 0; k < 64; ++k) {
    newlines |= std::uint64_t{p[k] == '\n'} << k;
    returns |= std::uint64_t{p[k] == '\r'} << k;
    marks |= std::uint64_t{p[k] == comment} << k;
  }
#endif
  if (comment == '\n')
    marks = 0;
}

/// 64 bytes at p as a bit mask: where c stands.
inline std::uint64_t byte_mask(const char *p, char c) noexcept {
  std::uint64_t mask = 0;
#if defined(__SSE2__)
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * k));
    mask |= std::uint64_t{static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c))))} << (16 * k);
  }
#else
  for (int k = 0; k < 64; ++k)
    mask |= std::uint64_t{p[k] == c} << k;
#endif
  return mask;
}

/// The longest run of set bits in x.
[[nodiscard]] inline unsigned longest_run(std::uint64_t x) noexcept {
  unsigned longest = 0;
  while (x != 0) {
    const auto start = static_cast<unsigned>(std::countr_zero(x));
    const auto length = static_cast<unsigned>(std::countr_one(x >> start));
    longest = std::max(longest, length);
    x = length + start >= 64 ? 0 : x & ~((std::uint64_t{1} << (start + length)) - 1);
  }
  return longest;
}

/// Whether x has a run of more than n set bits (n < 64): x shifted onto itself n times, in doubling steps.
[[nodiscard]] inline bool has_run_over(std::uint64_t x, unsigned n) noexcept {
  for (unsigned step = 1; n != 0 && x != 0; step *= 2) {
    const unsigned k = std::min(step, n);
    x &= x >> k;
    n -= k;
  }
  return x != 0;
}

/// The number of lines in [p, end) when each of them is certainly a row (an explicit delimiter, no
/// quoting, no comment character and no empty line in the range); else nothing. One pass at memory
/// speed instead of a scan row by row. With first_width, the longest first column too: in each 64
/// bytes the bits from every line start to its first delimiter, line end or '\r' are filled by one
/// addition (the carry runs over the bytes that stop nothing), and only when they hold a run longer
/// than the longest so far is it measured. The presets' names (column 0) cost about a count this way
/// (bench/bench_loadtxt.py --widths); measure_plain_lines, which visits each line's fields, cost 2-3x.
NDSHM_CLONES std::optional<std::uint64_t> count_plain_lines(const text_format &format, const char *p, const char *end,
                                                            std::uint32_t *first_width = nullptr) {
  auto size = static_cast<std::size_t>(end - p);
  if (format.delimiter == 0 || format.quote != 0 || size == 0)
    return std::nullopt;
  const char comment = comment_char(format);
  // An empty line: '\n' or "\r\n" right after the start or after a '\n' (a line of just "\r" is
  // empty too: its '\r' is cut as part of a CRLF).
  std::uint64_t count = 0;
  std::uint64_t after_newline = 1; // bit 0: the range starts a line
  std::uint64_t pending_return = 0; // a line start whose first byte was '\r' at the end of a block
  std::uint32_t width = 0;          // first_width: the longest so far
  std::uint64_t running = 0;        // the first column of the block before's last line goes on here
  std::uint32_t carried = 0;        // its bytes there
  std::uint64_t last_return = 0;    // the block before ended with '\r'
  const char *q = p;
  for (; end - q >= 64; q += 64) {
    std::uint64_t nl = 0, cr = 0, marks = 0;
    line_masks(q, comment, nl, cr, marks);
    if (marks != 0)
      return std::nullopt;
    std::uint64_t starts = (nl << 1) | after_newline;        // bytes that start a line
    if (first_width != nullptr) {
      // a '\r' before anything but '\n' (numpy's line end; parsing hands such text to numpy): the
      // rows are read one by one, as the scan measures them
      if (((cr << 1 | last_return) & ~nl) != 0)
        return std::nullopt;
      last_return = cr >> 63;
      const std::uint64_t others = ~(byte_mask(q, format.delimiter) | nl | cr); // bytes that stop nothing
      std::uint64_t sum = 0;
      const bool on = __builtin_add_overflow(others, (starts | running) & others, &sum);
      std::uint64_t first = (sum ^ others) & others; // the first columns' bytes
      if (running != 0) {
        const auto head = static_cast<std::uint32_t>(std::countr_one(first));
        carried += head;
        if (head < 64) { // (else the whole block is that name's)
          width = std::max(width, carried);
          first &= first + 1;
        }
      }
      // (a set bit width bytes after another: mostly in one run, a name longer than the longest so far)
      if (width < 64 && (first & (first >> width)) != 0 && has_run_over(first, width))
        width = std::max<std::uint32_t>(width, longest_run(first));
      if (on && !(running != 0 && first == ~std::uint64_t{0}))
        carried = static_cast<std::uint32_t>(std::countl_one(first));
      running = on ? 1 : 0;
    }
    std::uint64_t empty = starts & nl;                         // "\n" at a line start
    std::uint64_t cr_start = starts & cr;                      // "\r" at a line start...
    empty |= (cr_start << 1) & nl;                             // ...followed by '\n'
    empty |= pending_return & nl & 1;                          // "\r" ended the last block, '\n' starts this
    if (empty != 0)
      return std::nullopt;
    count += static_cast<std::uint64_t>(std::popcount(nl));
    after_newline = nl >> 63;
    pending_return = cr_start >> 63;
  }
  // The tail, a byte at a time.
  bool line_start = after_newline != 0, line_start_return = pending_return != 0;
  bool first = running != 0 || line_start; // in a first column
  carried = running != 0 ? carried : 0;
  bool after_return = last_return != 0;
  for (; q < end; ++q) {
    if (*q == comment && comment != '\n')
      return std::nullopt;
    if (first_width != nullptr && after_return && *q != '\n')
      return std::nullopt;
    after_return = *q == '\r';
    if (*q == '\n') {
      if (line_start || line_start_return)
        return std::nullopt;
      ++count;
    }
    if (first && (*q == format.delimiter || *q == '\n' || *q == '\r')) {
      width = std::max(width, carried);
      first = false;
    } else if (first) {
      ++carried;
    }
    line_start_return = line_start && *q == '\r';
    line_start = *q == '\n';
    if (line_start) {
      first = true;
      carried = 0;
    }
  }
  if (line_start_return || (first_width != nullptr && after_return)) // (a line of just "\r", or "\r" last)
    return std::nullopt;
  if (first)
    width = std::max(width, carried);
  if (first_width != nullptr)
    *first_width = std::max(*first_width, width);
  return count + (end[-1] != '\n' ? 1 : 0);
}

/// count_plain_lines that also finds the longest value of some columns: widths[slot_of[c]] for each
/// column c with a slot (slot_of: one entry per column up to the last measured, -1 for none). The
/// line and field ends come from 64-byte masks; only the bits up to the last measured column of each
/// line are visited, then the rest of the line is skipped. "\r\n" line ends are taken; any other
/// '\r', a comment character or an empty line: nothing (the caller reads the rows one by one).
NDSHM_CLONES std::optional<std::uint64_t> measure_plain_lines(const text_format &format, const char *p, const char *end,
                                                              std::span<const int> slot_of,
                                                              std::span<std::uint32_t> widths) {
  const auto size = static_cast<std::size_t>(end - p);
  if (format.delimiter == 0 || format.quote != 0 || size == 0 || slot_of.empty())
    return std::nullopt;
  const char comment = comment_char(format);
  const std::size_t last = slot_of.size() - 1;
  std::uint64_t count = 0;
  std::size_t column = 0, start = 0; // the current field's column and first byte (offset from p)
  bool skipping = false;             // past the last measured column: on to the line's end
  std::uint64_t pending_return = 0;  // the block before ended with '\r'
  auto note = [&](std::size_t stop) {
    if (const int slot = slot_of[column]; slot >= 0)
      widths[static_cast<std::size_t>(slot)] =
          std::max(widths[static_cast<std::size_t>(slot)], static_cast<std::uint32_t>(stop - start));
  };
  // The 64 bytes at q (offset base), of which the `valid` bits are text; false: the caller decides.
  auto block = [&](const char *q, std::size_t base, std::uint64_t valid) {
    std::uint64_t nl = 0, cr = 0, marks = 0;
    line_masks(q, comment, nl, cr, marks);
    nl &= valid;
    if ((marks & valid) != 0)
      return false;
    cr &= valid;
    const std::uint64_t returns = (cr << 1) | pending_return; // bytes right after a '\r'
    if ((returns & ~nl & ((valid << 1) | 1)) != 0) // (in the last block: a '\r' ending the text too)
      return false;
    pending_return = cr >> 63;
    std::uint64_t bits = nl | (byte_mask(q, format.delimiter) & valid);
    if (skipping)
      bits = nl != 0 ? bits & ~((nl & (0 - nl)) - 1) : 0;
    while (bits != 0) {
      const std::uint64_t bit = bits & (0 - bits);
      const std::size_t at = base + static_cast<std::size_t>(std::countr_zero(bits));
      if ((nl & bit) != 0) {
        const std::size_t stop = at - ((returns & bit) != 0 ? 1 : 0);
        if (stop == start && column == 0 && !skipping)
          return false; // an empty line
        if (!skipping)
          note(stop);
        ++count;
        column = 0;
        skipping = false;
        start = at + 1;
        bits ^= bit;
        continue;
      }
      note(at);
      start = at + 1;
      if (++column <= last) {
        bits ^= bit;
        continue;
      }
      skipping = true;
      const std::uint64_t later = nl & ~(bit | (bit - 1));
      bits = later != 0 ? bits & ~((later & (0 - later)) - 1) : 0;
    }
    return true;
  };
  std::size_t base = 0;
  for (; size - base >= 64; base += 64)
    if (!block(p + base, base, ~std::uint64_t{0}))
      return std::nullopt;
  if (base < size) {
    alignas(16) char tail[64] = {};
    std::memcpy(tail, p + base, size - base);
    if (!block(tail, base, (std::uint64_t{1} << (size - base)) - 1))
      return std::nullopt;
  }
  if (pending_return != 0)
    return std::nullopt; // a '\r' at the very end
  if (start < size) { // the last line has no line end
    if (!skipping)
      note(size);
    ++count;
  }
  return count;
}

/// The longest value of each measured column in a row's fields (column indices negative from the end).
void measure_fields(const std::vector<span> &fields, std::span<const std::int64_t> measured, char quote,
                    std::span<std::uint32_t> widths) {
  for (std::size_t k = 0; k < measured.size(); ++k) {
    std::int64_t c = measured[k] < 0 ? measured[k] + static_cast<std::int64_t>(fields.size()) : measured[k];
    if (c < 0 || c >= static_cast<std::int64_t>(fields.size()))
      continue;
    const span &s = fields[static_cast<std::size_t>(c)];
    std::size_t width = s.text.size();
    if (s.quoted_escapes) // "" stands for one quote
      for (std::size_t i = 0; i + 1 < s.text.size(); ++i)
        if (s.text[i] == quote && s.text[i + 1] == quote) {
          --width;
          ++i;
        }
    widths[k] = std::max(widths[k], static_cast<std::uint32_t>(width));
  }
}

/// Which bytes fields may be stored as 16 bytes (their text, then zeros): those of at most 16 bytes
/// whose 16 bytes stay within the row and cover only fields stored after them (which overwrite them).
std::vector<char> wide_stores(std::span<const field_spec> fields, std::uint64_t row_stride) {
  std::vector<char> wide(fields.size(), 0);
  for (std::size_t f = 0; f < fields.size(); ++f) {
    const auto &field = fields[f];
    if (field.kind != field_kind::bytes || field.size > 16 || field.offset + 16 > row_stride)
      continue;
    bool clear = true;
    for (std::size_t g = 0; g < f; ++g) // fields stored before f must not lie in its extra bytes
      clear = clear && (fields[g].offset + fields[g].size <= field.offset + field.size ||
                        fields[g].offset >= field.offset + 16);
    wide[f] = clear ? 1 : 0;
  }
  return wide;
}

/// Where the rows start after skiprows, and the first row's column count (numpy takes it from there).
struct text_head {
  const char *start;
  std::uint64_t line;    ///< line number of start
  std::uint64_t columns; ///< 0: there is no row
};

text_head read_head(const scanner &scan, const text_format &format, const char *p, const char *end) {
  std::uint64_t line = format.first_line;
  for (std::uint64_t i = 0; i < format.skiprows && p < end; ++i) {
    row r = scan.read(p, end);
    p = r.next;
    line += r.lines;
  }
  std::vector<span> fields;
  for (const char *q = p; q < end;) {
    row r = scan.read(q, end);
    if (!scan.blank(r)) {
      scan.split(r, fields);
      return {p, line, fields.size()};
    }
    q = r.next;
  }
  return {p, line, 0};
}

std::uint64_t row_limit(const text_format &format) {
  return format.max_rows >= 0 ? static_cast<std::uint64_t>(format.max_rows) : UINT64_MAX;
}

/// Parses a text's rows into an output a range at a time: what all parsing threads share.
class row_parser {
public:
  /// columns: the first row's (usecols resolve against it once, for the fast path).
  row_parser(const text_source &source, const text_format &format, std::span<const field_spec> fields,
             std::uint64_t columns, std::uint64_t row_stride)
      : m_source(source), m_format(format), m_fields(fields), m_stride(row_stride), m_scan(format),
        m_select(!format.usecols.empty()) {
    if (m_select && format.usecols.size() != fields.size())
      throw std::invalid_argument("ndshm: usecols names " + std::to_string(format.usecols.size()) +
                                  " columns for " + std::to_string(fields.size()) + " fields");
    // The fast path (row_program) takes rows of as many columns as the first, usecols resolved once
    // (in increasing order; else every row takes the general path).
    const std::size_t width = m_select ? columns : fields.size();
    std::vector<std::size_t> column_of(fields.size());
    // Numbers are scanned as [sign] digits [. digits]: a delimiter or comment character among those
    // would be taken into a number.
    auto in_numbers = [](char c) {
      return c != 0 && std::string_view("+-.0123456789").find(c) != std::string_view::npos;
    };
    bool simple = format.quote == 0 && !fields.empty() && width != 0 && !in_numbers(format.delimiter) &&
                  (format.comment.empty() || !in_numbers(format.comment[0]));
    for (std::size_t f = 0; f < fields.size() && simple; ++f) {
      std::int64_t c = m_select ? format.usecols[f] : static_cast<std::int64_t>(f);
      c += c < 0 ? static_cast<std::int64_t>(width) : 0;
      simple = c >= 0 && c < static_cast<std::int64_t>(width) &&
               (f == 0 || static_cast<std::size_t>(c) > column_of[f - 1]);
      column_of[f] = static_cast<std::size_t>(c);
    }
    if (simple)
      m_program.emplace(format, fields, column_of, width, wide_stores(fields, row_stride));
  }

  /// What parse_range did.
  struct result {
    std::uint64_t rows = 0;  ///< stored
    std::uint64_t lines = 0; ///< consumed
    const char *next = nullptr;
    std::optional<parse_error> error; ///< the first bad row's (parsing stopped there)
    truncation_report truncated;
    bool out_of_memory = false;
    std::exception_ptr failure; ///< anything else thrown while parsing (rethrown by the caller)
  };

  /// Parses the rows in [p, stop) (p starts line `line`), at most `rows` of them, into output rows
  /// first_row on. Each thread maps its own rows' pages a window ahead of its parsing: page faults run
  /// on every core at once, and the zeroed lines are still in cache when the rows are written.
  /// room(from, upto) makes output rows [from, upto) writable and mapped and returns row 0 (which may
  /// move), or nullptr when memory is short.
  template <class Room>
  result parse_range(const char *p, const char *stop, std::uint64_t line, std::uint64_t first_row,
                     std::uint64_t rows, Room &&room) const {
    const char *const limit = m_source.text().data() + m_source.text().size();
    const std::uint64_t last_row = rows > UINT64_MAX - first_row ? UINT64_MAX : first_row + rows;
    const std::uint64_t window = (std::uint64_t{1} << 20) / std::max<std::uint64_t>(m_stride, 1) + 1;
    const std::uint64_t first_line = line;
    std::uint64_t mapped = first_row; // rows [first_row, mapped) have their pages
    std::uint64_t index = first_row;
    std::byte *out = nullptr;
    std::vector<span> spans;
    std::string unescaped;
    result done;
    auto finish = [&] {
      done.rows = index - first_row;
      done.lines = line - first_line;
      done.next = p;
      return std::move(done);
    };
    auto fail = [&](const row &r, const char *at, std::string_view found, const std::string &expected,
                    const std::string &what, bool other_grammar = false) {
      std::uint64_t column = at != nullptr ? static_cast<std::uint64_t>(at - r.begin) + 1 : 0;
      const std::string &name = m_source.name();
      std::string where = name + ":" + std::to_string(line) + (column ? ":" + std::to_string(column) : "");
      done.error.emplace(name, line, column, shorten(found), expected, where + ": " + what);
      done.error->other_grammar = other_grammar;
      return finish();
    };
    while (p < stop && index < last_row) {
      if (index >= mapped) {
        std::uint64_t upto = std::min(last_row, mapped + window);
        out = room(mapped, upto);
        if (out == nullptr) {
          done.out_of_memory = true;
          return finish();
        }
        mapped = upto;
      }
      if (m_program) {
        std::uint64_t parsed =
            m_program->parse_run(p, stop, limit, out + index * m_stride, m_stride, mapped - index);
        index += parsed;
        line += parsed;
        if (index == mapped || p >= stop)
          continue;
      }
      std::byte *dest = out + index * m_stride;
      row r = m_scan.read(p, stop);
      std::uint64_t row_lines = r.lines;
      p = r.next;
      if (m_scan.blank(r)) {
        line += row_lines;
        continue;
      }
      if (const char *alone = lone_return(r); alone != nullptr)
        return fail(r, alone, "\\r", "a line end",
                    "a carriage return alone ('\\r', old Mac text) ends no line for ndshm, which reads "
                    "'\\n' and '\\r\\n' line ends (numpy takes '\\r' too); convert the line ends first",
                    true);
      // numpy decodes the text (UTF-8 for files): its strings, spaces and digits are Unicode's
      if (const char *high = past_ascii(r); high != nullptr)
        return fail(r, high, byte_name(*high), "ASCII", "a byte past ASCII, which numpy's parser decodes", true);
      if (!m_scan.split(r, spans))
        return fail(r, nullptr, {r.begin, static_cast<std::size_t>(r.end - r.begin)}, "a closing quote",
                    "unterminated quoted field");
      if (!m_select && spans.size() != m_fields.size())
        return fail(r, nullptr, {r.begin, static_cast<std::size_t>(r.end - r.begin)},
                    std::to_string(m_fields.size()) + " columns",
                    "the number of columns changed from " + std::to_string(m_fields.size()) + " to " +
                        std::to_string(spans.size()) + " at row " + std::to_string(index + 1) +
                        "; use `usecols` to select a subset and avoid this error");
      for (std::size_t f = 0; f < m_fields.size(); ++f) {
        std::int64_t column = m_select ? m_format.usecols[f] : static_cast<std::int64_t>(f);
        if (column < 0)
          column += static_cast<std::int64_t>(spans.size());
        if (column < 0 || column >= static_cast<std::int64_t>(spans.size())) {
          std::string named = std::to_string(m_select ? m_format.usecols[f] : column);
          return fail(r, nullptr, {r.begin, static_cast<std::size_t>(r.end - r.begin)}, "column " + named,
                      "invalid column index " + named + " at row " + std::to_string(index + 1) + " with " +
                          std::to_string(spans.size()) + " columns");
        }
        const span &s = spans[static_cast<std::size_t>(column)];
        std::string_view value = s.text;
        if (s.quoted_escapes) {
          unescaped.clear();
          for (std::size_t k = 0; k < value.size(); ++k) {
            unescaped += value[k];
            if (value[k] == m_format.quote && k + 1 < value.size() && value[k + 1] == m_format.quote)
              ++k;
          }
          value = unescaped;
        }
        const field_spec &field = m_fields[f];
        if (field.kind == field_kind::bytes && value.size() > field.size) {
          if (!m_format.truncate_strings)
            return fail(r, s.text.data(), value, field.type_name,
                        "'" + shorten(value) + "' is longer than the " + field.type_name + " field: S" +
                            std::to_string(value.size()) + " holds it (truncate=True cuts it, as numpy does)");
          cut(done.truncated, r, line, f, s.text.data(), value);
        }
        if (!detail::convert(field, value, dest + field.offset)) // (numpy's words, and its row: 0-based)
          return fail(r, s.text.data(), value, field.type_name,
                      "could not convert string '" + shorten(value) + "' to " + field.type_name + " at row " +
                          std::to_string(index) + ", column " + std::to_string(column + 1) + ".");
      }
      ++index;
      line += row_lines;
    }
    return finish();
  }

private:
  /// Notes a value cut to its field's width in report.
  void cut(truncation_report &report, const row &r, std::uint64_t line, std::size_t f, const char *at,
           std::string_view value) const {
    if (report.values++ == 0) {
      report.file = m_source.name();
      report.line = line;
      report.column = static_cast<std::uint64_t>(at - r.begin) + 1;
      report.text = shorten(value);
      report.field = f;
      report.widths.assign(m_fields.size(), 0);
    }
    report.widths[f] = std::max(report.widths[f], static_cast<std::uint32_t>(value.size()));
  }

  /// The row's first byte past ASCII, or nullptr.
  [[nodiscard]] static const char *past_ascii(const row &r) noexcept {
    const char *high = std::find_if(r.begin, r.end, [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    return high != r.end ? high : nullptr;
  }

  /// A '\r' in an unquoted row that numpy would take for a line end with text after it (not just
  /// empty lines), or nullptr. ndshm reads '\n' and "\r\n" line ends only: such a row is an error,
  /// never silently one row where numpy has two.
  [[nodiscard]] const char *lone_return(const row &r) const noexcept {
    if (m_format.quote != 0)
      return nullptr; // (quoted fields may hold any character)
    const auto *cr = static_cast<const char *>(std::memchr(r.begin, '\r', static_cast<std::size_t>(r.end - r.begin)));
    if (cr == nullptr)
      return nullptr;
    const bool empty_after = std::all_of(cr, r.end, [this](char c) {
      return c == '\r' || (m_format.delimiter == 0 && is_space(c));
    });
    return empty_after ? nullptr : cr;
  }

  const text_source &m_source;
  const text_format &m_format;
  std::span<const field_spec> m_fields;
  std::uint64_t m_stride;
  scanner m_scan;
  bool m_select;
  std::optional<row_program> m_program;
};

/// Output rows [from, upto) mapped (their pages allocated now, on this thread), and the bytes after
/// them to the end of their last huge page's range, but not past byte `limit` (where the next thread's
/// rows start, or the room ends): so each such range is mapped whole, by one call, as one huge page.
/// out, or nullptr when memory is short.
std::byte *map_rows(std::byte *out, std::uint64_t from, std::uint64_t upto, std::uint64_t row_stride,
                    std::uint64_t limit) noexcept {
  const auto base = reinterpret_cast<std::uintptr_t>(out);
  const std::uint64_t begin = from * row_stride, end = upto * row_stride;
  const std::uint64_t whole = detail::huge_round(base + end) - base;
  return detail::memory_prefault(out + begin, std::max(end, std::min(whole, limit)) - begin) ? out : nullptr;
}

} // namespace

text_plan plan_rows(const text_source &source, const text_format &format) {
  std::string_view text = source.text();
  const char *const base = text.data();
  const char *const end = base + text.size();
  scanner scan(format);
  text_plan plan;
  const text_head head = read_head(scan, format, base, end);
  plan.columns = head.columns;
  const char *const p = head.start;

  auto remaining = static_cast<std::size_t>(end - p);
  plan.threads = format.max_rows >= 0 ? 1u : thread_count(format, remaining);
  // Several chunks a thread, taken in turn (run_queue), so that one thread's slower run (the VM's
  // cores and pages come at uneven speeds) does not hold the others up: with one chunk each, the two
  // threads of a 1 GB load ended up to 0.39 s apart.
  const std::size_t n = plan.threads == 1 ? 1 : std::clamp<std::size_t>(remaining / bytes_per_chunk, plan.threads,
                                                                          std::size_t{plan.threads} * chunks_per_thread);
  std::vector<const char *> cuts{p};
  for (std::size_t i = 1; i < n; ++i) {
    const char *guess = p + remaining / n * i;
    const char *nl = static_cast<const char *>(std::memchr(guess, '\n', static_cast<std::size_t>(end - guess)));
    const char *cut = nl != nullptr ? nl + 1 : end;
    if (cut > cuts.back())
      cuts.push_back(cut);
  }
  cuts.push_back(end);
  plan.chunks.resize(cuts.size() - 1);
  std::vector<std::uint64_t> lines(plan.chunks.size());
  const std::uint64_t limit = row_limit(format);
  // The measured columns (format.measure, all_columns resolved) and, when none counts from the end,
  // their slots by column for measure_plain_lines.
  std::vector<std::int64_t> measured = format.measure;
  if (measured.size() == 1 && measured[0] == all_columns) {
    measured.resize(head.columns);
    for (std::size_t c = 0; c < measured.size(); ++c)
      measured[c] = static_cast<std::int64_t>(c);
  }
  std::vector<int> slot_of;
  if (!measured.empty() && *std::min_element(measured.begin(), measured.end()) >= 0) {
    slot_of.assign(static_cast<std::size_t>(*std::max_element(measured.begin(), measured.end())) + 1, -1);
    for (std::size_t k = measured.size(); k-- > 0;)
      slot_of[static_cast<std::size_t>(measured[k])] = static_cast<int>(k);
  }
  std::vector<std::vector<std::uint32_t>> widths(measured.empty() ? 0 : plan.chunks.size(),
                                                 std::vector<std::uint32_t>(measured.size(), 0));
  std::vector<std::exception_ptr> failures(plan.chunks.size());

  detail::run_queue(plan.threads, plan.chunks.size(), [&](std::size_t i) {
    auto &chunk = plan.chunks[i];
    chunk.begin = static_cast<std::size_t>(cuts[i] - base);
    const char *q = cuts[i];
    const char *stop = cuts[i + 1];
    std::uint64_t rows = 0, count = 0;
    // (With max_rows, rows are counted one by one up to it: a text may be far longer.)
    std::optional<std::uint64_t> lines_only;
    if (limit == UINT64_MAX && measured.empty())
      lines_only = count_plain_lines(format, q, stop);
    else if (limit == UINT64_MAX && slot_of.size() == 1) // the first column only (the presets' names)
      lines_only = count_plain_lines(format, q, stop, &widths[i][0]);
    else if (limit == UINT64_MAX)
      lines_only = measure_plain_lines(format, q, stop, slot_of, widths[i]);
    if (lines_only) {
      chunk.end = static_cast<std::size_t>(stop - base);
      chunk.rows = lines[i] = *lines_only; // every line a row: no comment, blank line or quote in it
      return;
    }
    std::vector<span> fields; // (split allocates: kept out of the loop)
    while (q < stop && rows < limit) {
      row r = scan.read(q, stop);
      if (!scan.blank(r)) {
        ++rows;
        if (!measured.empty()) {
          try { // (an unterminated quote: what was split; parsing says what is wrong)
            scan.split(r, fields);
          } catch (...) { // (no memory for the fields: rethrown below, out of the threads)
            failures[i] = std::current_exception();
            return;
          }
          measure_fields(fields, measured, format.quote, widths[i]);
        }
      }
      count += r.lines;
      q = r.next;
    }
    chunk.end = static_cast<std::size_t>(q - base);
    chunk.rows = rows;
    lines[i] = count;
  });

  for (const auto &failure : failures)
    if (failure)
      std::rethrow_exception(failure);
  std::uint64_t row = 0, line = head.line;
  for (std::size_t i = 0; i < plan.chunks.size(); ++i) {
    plan.chunks[i].first_row = row;
    plan.chunks[i].first_line = line;
    row += plan.chunks[i].rows;
    line += lines[i];
  }
  plan.rows = row;
  plan.lines = line - format.first_line;
  plan.widths.assign(measured.size(), 0);
  for (const auto &chunk : widths)
    for (std::size_t k = 0; k < chunk.size(); ++k)
      plan.widths[k] = std::max(plan.widths[k], chunk[k]);
  for (std::size_t k = 0; k < measured.size(); ++k) // a column measured twice has one slot_of
    for (std::size_t j = 0; j < k; ++j)
      if (measured[j] == measured[k])
        plan.widths[k] = plan.widths[j] = std::max(plan.widths[j], plan.widths[k]);
  return plan;
}

truncation_report parse_rows(const text_source &source, const text_format &format, const text_plan &plan,
                             std::span<const field_spec> fields, std::byte *out, std::uint64_t row_stride) {
  const row_parser parser(source, format, fields, plan.columns, row_stride);
  const char *const base = source.text().data();
  std::vector<row_parser::result> done(plan.chunks.size());
  std::atomic<std::size_t> stopped{plan.chunks.size()}; // the first chunk known to have stopped early
  detail::run_queue(plan.threads, plan.chunks.size(), [&](std::size_t i) {
    if (i > stopped.load()) // (what comes after a stop is not needed: see below)
      return;
    const auto &chunk = plan.chunks[i];
    try { // (an exception must not leave a thread: strings and spans allocate)
      done[i] = parser.parse_range(base + chunk.begin, base + chunk.end, chunk.first_line, chunk.first_row,
                                   chunk.rows, [&](std::uint64_t from, std::uint64_t upto) {
                                     return map_rows(out, from, upto, row_stride,
                                                     (chunk.first_row + chunk.rows) * row_stride);
                                   });
    } catch (const std::bad_alloc &) {
      done[i] = {};
      done[i].out_of_memory = true;
    } catch (...) {
      done[i] = {};
      done[i].failure = std::current_exception();
    }
    // Each thread lets go of its text's pages: the final unmapping, on one thread, would otherwise
    // take them all down (0.061-0.077 s of the 1 GB matrix file, timed as `del job` after
    // TextJob.parse; 0.000 s since, 3 runs each way).
    source.release(base + chunk.begin, base + chunk.end);
    if (done[i].failure || done[i].out_of_memory || done[i].error)
      for (std::size_t first = stopped.load(); i < first && !stopped.compare_exchange_weak(first, i);) {
      }
  });
  // In file order: the first chunk that stopped says why. A chunk short of memory stopped before its
  // end, where a bad row may stand: a later chunk's error would not be the first in the file.
  truncation_report truncated;
  for (auto &chunk : done) {
    if (chunk.failure)
      std::rethrow_exception(chunk.failure);
    if (chunk.out_of_memory)
      throw std::bad_alloc();
    if (chunk.error)
      throw *chunk.error;
    truncated.merge(chunk.truncated);
  }
  return truncated;
}

bool parses_in_one_pass(const text_source &source, const text_format &format) {
  // Under 1 MiB, counting the rows first and filling memory of their exact size costs less than room that
  // grows (a memfd sized, mapped and shrunk): a 2,000-row file took 0.28-0.38 ms planned, 0.66-0.78 ms in
  // one pass, against numpy.loadtxt's 0.37 ms (shared output, medians of 50).
  constexpr std::size_t counted_below = std::size_t{1} << 20;
  return format.max_rows >= 0 ||
         (thread_count(format, source.text().size()) == 1 && source.text().size() >= counted_below);
}

std::uint64_t rows_at_most(const text_source &source, const text_format &format, std::size_t fields) noexcept {
  const std::uint64_t rows = source.text().size() / std::max<std::size_t>(fields, 1) + 1;
  return format.max_rows >= 0 ? std::min(rows, static_cast<std::uint64_t>(format.max_rows)) : rows;
}

text_plan parse_one_pass(const text_source &source, const text_format &format,
                         std::span<const field_spec> fields, std::uint64_t row_stride,
                         const output_room &room) {
  std::string_view text = source.text();
  const char *const end = text.data() + text.size();
  const scanner scan(format);
  const text_head head = read_head(scan, format, text.data(), end);
  const row_parser parser(source, format, fields, head.columns, row_stride);
  // Room to the end of the rows' huge page range, but not past what the text can fill: a 2,000-row
  // file's 64 KB of rows in a huge page cost a page collapsed, then freed by the final shrink (3 ms,
  // against numpy.loadtxt's 0.4 ms for the whole load).
  const std::uint64_t most = rows_at_most(source, format, fields.size()) * row_stride;
  auto done = parser.parse_range(head.start, end, head.line, 0, row_limit(format),
                                 [&](std::uint64_t from, std::uint64_t upto) {
                                   const std::uint64_t rows_end = upto * row_stride;
                                   const std::uint64_t room_end =
                                       std::max(rows_end, std::min(detail::huge_round(rows_end), most));
                                   return map_rows(room(room_end), from, upto, row_stride, room_end);
                                 });
  if (done.error)
    throw *done.error;
  if (done.out_of_memory)
    throw std::bad_alloc();
  text_plan plan;
  plan.columns = head.columns;
  plan.rows = done.rows;
  plan.lines = head.line - format.first_line + done.lines;
  plan.truncated = std::move(done.truncated);
  return plan;
}

namespace {

/// Calls fn(block source, block format, rows before the block) for every block holding rows, in order,
/// with skiprows, max_rows and line numbers carried from block to block; fn returns the block's plan.
template <class Fn> text_plan for_each_block(text_blocks &blocks, const text_format &format, Fn &&fn) {
  if (format.quote != 0)
    throw std::invalid_argument("ndshm: a stream is read a line at a time: no quoted fields");
  text_plan total;
  text_format part = format;
  blocks.rewind();
  for (std::string_view block = blocks.next(); !block.empty(); block = blocks.next()) {
    if (format.max_rows >= 0) {
      part.max_rows = format.max_rows - static_cast<std::int64_t>(total.rows);
      if (part.max_rows == 0 && total.columns != 0) // read on only for the first row's column count
        break;
    }
    auto source = text_source::borrow(block, blocks.name(), false);
    const text_plan plan = fn(source, part, total.rows);
    if (total.columns == 0)
      total.columns = plan.columns;
    total.rows += plan.rows;
    total.lines += plan.lines;
    total.widths.resize(std::max(total.widths.size(), plan.widths.size()), 0);
    for (std::size_t k = 0; k < plan.widths.size(); ++k)
      total.widths[k] = std::max(total.widths[k], plan.widths[k]);
    total.truncated.merge(plan.truncated);
    part.first_line += plan.lines;
    part.skiprows = part.skiprows > plan.lines ? part.skiprows - plan.lines : 0;
  }
  return total;
}

} // namespace

text_plan plan_blocks(text_blocks &blocks, const text_format &format) {
  return for_each_block(blocks, format,
                        [](const text_source &source, const text_format &part, std::uint64_t) {
                          return plan_rows(source, part);
                        });
}

text_plan parse_stream(text_blocks &blocks, const text_format &format, std::span<const field_spec> fields,
                       std::uint64_t row_stride, const output_room &room) {
  // One thread inflating plain gzip has a core of its own: parsing takes the others (1 GB of gzip -1
  // coverage text on 2 cores: 3.0-3.3 s this way in 4 runs, 3.1-3.9 s parsing on both in 8). BGZF
  // inflates on every core in bursts: parsing too (3.1-3.9 s vs 3.8-4.1 s on one, 3 runs each).
  // Runs of bench/parse_bench.cpp FILE.gz 1|2 (quiet moments of this noisy VM: 3.5-3.9 s in others).
  text_format parsing = format;
  parsing.measure.clear(); // (the widths were found by plan_blocks)
  if (parsing.threads == 0 && !blocks.inflates_in_parallel())
    parsing.threads = std::max(1u, std::thread::hardware_concurrency() - 1);
  auto parse_block = [&](const text_source &source, const text_format &part, std::uint64_t first_row) {
    const std::uint64_t before = first_row * row_stride;
    output_room block_room = [&](std::uint64_t nbytes) { return room(before + nbytes) + before; };
    if (parses_in_one_pass(source, part)) // one thread: no count before the parse
      return parse_one_pass(source, part, fields, row_stride, block_room);
    text_plan plan = plan_rows(source, part);
    plan.truncated = parse_rows(source, part, plan, fields, block_room(plan.rows * row_stride), row_stride);
    return plan;
  };
  return for_each_block(blocks, parsing, parse_block);
}

} // namespace ndshm
