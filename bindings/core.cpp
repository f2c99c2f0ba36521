// ndshm._core: the nanobind module. It converts types, attaches docstrings and releases the GIL; no logic.
#include <cerrno>
#include <optional>
#include <system_error>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "ndshm/errors.hpp"
#include "ndshm/handle.hpp"
#include "ndshm/loadtxt.hpp"
#include "ndshm/session.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using release_gil = nb::call_guard<nb::gil_scoped_release>;

void bind_codecs(nb::module_ &m); // bindings/codecs.cpp: HDF5 read-back

namespace {

PyObject *g_segment_not_found = nullptr;
PyObject *g_broker_error = nullptr;
PyObject *g_parse_error = nullptr;
PyObject *g_other_grammar = nullptr;

/// A text input with its grammar and row plan, between the two loader phases.
struct text_job {
  ndshm::text_source source;
  std::optional<ndshm::text_blocks> blocks; ///< a gzip file read in blocks instead of source
  bool one_pass = false;                    ///< source parsed by one thread, its rows not counted first
  ndshm::text_format format;
  ndshm::text_plan plan;
  nb::object keep; ///< the bytes object a borrowed source points into

  [[nodiscard]] bool streamed() const noexcept { return blocks.has_value() || one_pass; }

  /// The format read only up to the first row (its column count): for jobs whose rows are counted as
  /// parse_new parses them.
  [[nodiscard]] ndshm::text_format first_row_only() const {
    ndshm::text_format first = format;
    first.max_rows = 0;
    return first;
  }

  /// Plans the rows of source; with one_pass allowed and one thread to parse them, only the first
  /// row's columns (the rows are counted as parse_new parses them). Widths to measure need the plan.
  void plan_source(bool allow_one_pass) {
    one_pass = allow_one_pass && format.measure.empty() && ndshm::parses_in_one_pass(source, format);
    plan = ndshm::plan_rows(source, one_pass ? first_row_only() : format);
  }
};

/// A field as Python describes it: kind, size, offset, big_endian, type name.
using field_tuple = std::tuple<int, std::uint32_t, std::uint32_t, bool, std::string>;

std::vector<ndshm::field_spec> to_fields(const std::vector<field_tuple> &specs) {
  std::vector<ndshm::field_spec> fields;
  for (const auto &[kind, size, offset, big_endian, name] : specs)
    fields.push_back({static_cast<ndshm::field_kind>(kind), size, offset, big_endian, name});
  return fields;
}

/// What parsing cut, as Python sees it: (values, file, line, column, text, field, widths), or None.
using report_tuple = std::optional<std::tuple<std::uint64_t, std::string, std::uint64_t, std::uint64_t, std::string,
                                              std::size_t, std::vector<std::uint32_t>>>;

report_tuple to_tuple(ndshm::truncation_report report) {
  if (report.values == 0)
    return std::nullopt;
  return std::make_tuple(report.values, std::move(report.file), report.line, report.column, std::move(report.text),
                         report.field, std::move(report.widths));
}

ndshm::text_format make_format(std::string_view delimiter, std::string comment, std::string_view quote,
                               std::uint64_t skiprows, std::int64_t max_rows, std::vector<std::int64_t> usecols,
                               bool truncate, unsigned threads, std::vector<std::int64_t> measure = {}) {
  ndshm::text_format format;
  format.delimiter = delimiter.empty() ? '\0' : delimiter[0];
  format.comment = std::move(comment);
  format.quote = quote.empty() ? '\0' : quote[0];
  format.skiprows = skiprows;
  format.max_rows = max_rows;
  format.usecols = std::move(usecols);
  format.truncate_strings = truncate;
  format.threads = threads;
  format.measure = std::move(measure);
  return format;
}

void raise_os_error(PyObject *type, int code, const char *message) {
  PyObject *args = Py_BuildValue("(is)", code, message);
  PyErr_SetObject(type, args);
  Py_XDECREF(args);
}

// Buffer protocol: numpy arrays built over a Mapping keep it (and so the mapping) as their .base.
int mapping_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  const ndshm::mapping *segment = nb::inst_ptr<ndshm::mapping>(self);
  return PyBuffer_FillInfo(view, self, segment->data(), static_cast<Py_ssize_t>(segment->size()),
                           segment->writable() ? 0 : 1, flags);
}

PyType_Slot mapping_slots[] = {{Py_bf_getbuffer, reinterpret_cast<void *>(mapping_getbuffer)},
                               {0, nullptr}};

} // namespace

NB_MODULE(_core, m) {
  m.doc() = "ndshm's C++ core: shared segments, their broker and handle strings.";

  g_segment_not_found = PyErr_NewExceptionWithDoc(
      "ndshm.SegmentNotFoundError",
      "The segment a handle or name refers to does not exist (any more).", PyExc_FileNotFoundError,
      nullptr);
  g_broker_error = PyErr_NewExceptionWithDoc(
      "ndshm.BrokerError", "The session's broker could not be started or reached.", PyExc_OSError,
      nullptr);
  g_parse_error = PyErr_NewExceptionWithDoc(
      "ndshm.ParseError",
      "Text that does not parse: .file, .line and .column (1-based) say where, .text what was found, "
      ".expected what was wanted.",
      PyExc_ValueError, nullptr);
  g_other_grammar = PyErr_NewExceptionWithDoc(
      "ndshm._core.OtherGrammar",
      "Text numpy.loadtxt reads by rules ndshm's parser lacks (a byte past ASCII, a lone '\\r'): "
      "ndshm.loadtxt hands it to numpy.",
      g_parse_error, nullptr);
  m.attr("ParseError") = nb::handle(g_parse_error);
  m.attr("OtherGrammar") = nb::handle(g_other_grammar);
  m.attr("SegmentNotFoundError") = nb::handle(g_segment_not_found);
  m.attr("BrokerError") = nb::handle(g_broker_error);

  nb::register_exception_translator([](const std::exception_ptr &p, void *) {
    try {
      std::rethrow_exception(p);
    } catch (const ndshm::segment_not_found &e) {
      raise_os_error(g_segment_not_found, ENOENT, e.what());
    } catch (const ndshm::segment_exists &e) {
      raise_os_error(PyExc_FileExistsError, EEXIST, e.what());
    } catch (const ndshm::broker_error &e) {
      raise_os_error(g_broker_error, EIO, e.what());
    } catch (const ndshm::parse_error &e) {
      nb::gil_scoped_acquire gil; // translators run with the GIL; explicit for clarity
      PyObject *type = e.other_grammar ? g_other_grammar : g_parse_error;
      nb::object error = nb::borrow(type)(e.what());
      error.attr("file") = e.file;
      error.attr("line") = e.line;
      error.attr("column") = e.column;
      error.attr("text") = e.text;
      error.attr("expected") = e.expected;
      PyErr_SetObject(type, error.ptr());
    } catch (const std::system_error &e) {
      raise_os_error(PyExc_OSError, e.code().value(), e.what());
    }
  });

  nb::class_<ndshm::mapping>(m, "Mapping",
                              "One mapping of a shared segment; numpy arrays over it keep it alive.",
                              nb::type_slots(mapping_slots))
      .def_prop_ro("name", &ndshm::mapping::name, "The segment's name; empty for private memory.")
      .def_prop_ro("session", &ndshm::mapping::session)
      .def_prop_ro("size", &ndshm::mapping::size, "Size in bytes, as created.")
      .def_prop_ro("writable", &ndshm::mapping::writable)
      .def_prop_ro("address",
                   [](const ndshm::mapping &s) { return reinterpret_cast<std::uintptr_t>(s.data()); })
      .def("__repr__", [](const ndshm::mapping &s) {
        return "<ndshm.Mapping " + s.session() + ":" + s.name() + " " + std::to_string(s.size()) +
               " bytes" + (s.writable() ? "" : " read-only") + ">";
      });

  m.def(
      "create",
      [](std::uint64_t size, std::string session, std::string name, bool named, std::string dtype,
         std::string shape, bool populate, bool persist) {
        return ndshm::create_segment({size, std::move(session), std::move(name), named,
                                      {std::move(dtype), std::move(shape)}, populate, persist});
      },
      "size"_a, "session"_a = "", "name"_a = "", "named"_a = false, "dtype"_a = "", "shape"_a = "",
      "populate"_a = true, "persist"_a = false, release_gil(),
      "Creates a zero-filled segment (pages reserved up front) and maps it. persist: a named segment "
      "kept after its program ends, until unlink or collect_orphans.");
  m.def(
      "attach",
      [](std::string_view session, std::string_view name, bool writable, std::uint64_t ticket) {
        return ndshm::attach_segment(session, name,
                                     writable ? ndshm::access::read_write : ndshm::access::read_only,
                                     ticket);
      },
      "session"_a, "name"_a, "writable"_a = true, "ticket"_a = 0, release_gil(),
      "Maps an existing segment; a ticket (not 0) is redeemed.");
  m.def("issue_ticket", &ndshm::issue_ticket, "segment"_a, "persist"_a = false, release_gil(),
        "Keeps the segment alive for one future attach of the returned ticket, while this program runs "
        "(persist: until that attach or collect_orphans).");
  m.def("unlink", &ndshm::unlink_segment, "session"_a, "name"_a, release_gil());
  m.def(
      "list_segments",
      [](std::string_view session) {
        nb::gil_scoped_release unlocked;
        auto entries = ndshm::list_segments(session);
        nb::gil_scoped_acquire locked;
        nb::list result;
        for (const auto &e : entries) {
          nb::dict row;
          row["name"] = e.name;
          row["size"] = e.size;
          row["dtype"] = e.meta.dtype;
          row["shape"] = e.meta.shape;
          row["tickets"] = e.tickets;
          row["named"] = e.named;
          row["persistent"] = e.persistent;
          row["program"] = e.program;
          row["age"] = e.age_seconds;
          row["holders"] = e.holders;
          result.append(row);
        }
        return result;
      },
      "session"_a, "Live segments of a session, as dicts (empty if no broker runs).");
  m.def("collect_orphans", &ndshm::collect_orphans, "session"_a, "min_age"_a, "program"_a = "", release_gil());
  m.def("program_id", &ndshm::program_id, "This process's program id (founded on first use).");
  m.def("set_program_id", &ndshm::set_program_id, "id"_a,
        "Joins the program id (a multiprocessing parent's); False, and nothing changes, if it is malformed.");
  m.def("list_sessions", &ndshm::list_sessions, release_gil());
  m.def("broker_pid", &ndshm::broker_pid, "session"_a, release_gil());
  m.def("disconnect", &ndshm::disconnect, "session"_a, release_gil());
  m.def("default_session", &ndshm::default_session);
  m.def("set_broker_path", &ndshm::set_broker_path, "path"_a);

  nb::class_<text_job>(m, "TextJob", "A text input, its grammar and where its rows are.")
      .def_static(
          "open",
          [](const std::string &path, std::string_view delimiter, std::string comment, std::string_view quote,
             std::uint64_t skiprows, std::int64_t max_rows, std::vector<std::int64_t> usecols, bool truncate,
             unsigned threads, bool one_pass, std::uint64_t begin, std::uint64_t end,
             std::vector<std::int64_t> measure) {
            nb::gil_scoped_release unlocked;
            auto job = std::make_unique<text_job>();
            job->format = make_format(delimiter, std::move(comment), quote, skiprows, max_rows,
                                      std::move(usecols), truncate, threads, std::move(measure));
            if (begin != 0 || end != UINT64_MAX) {
              job->source = ndshm::text_source::open(path, begin, end);
              job->plan_source(one_pass);
            } else if (path.ends_with(".gz") && job->format.quote == 0) { // streamed: memory stays bounded
              job->blocks.emplace(ndshm::text_blocks::open_gzip(path));
              // (widths to measure: every block planned first, the stream inflated twice)
              job->plan = ndshm::plan_blocks(*job->blocks, job->format.measure.empty() ? job->first_row_only()
                                                                                       : job->format);
            } else {
              job->source = ndshm::text_source::open(path);
              job->plan_source(one_pass);
            }
            return job.release();
          },
          "path"_a, "delimiter"_a, "comment"_a, "quote"_a, "skiprows"_a, "max_rows"_a, "usecols"_a,
          "truncate"_a, "threads"_a, "one_pass"_a, "begin"_a = 0, "end"_a = UINT64_MAX,
          "measure"_a = std::vector<std::int64_t>{}, nb::rv_policy::take_ownership,
          "Maps a file and plans its rows (a .gz file without quoting, or with one_pass text one thread "
          "parses: streamed, its rows counted as parse_new parses them; rows is None until then); "
          "begin/end: only the lines that start within those bytes of a plain file; measure: columns "
          "whose longest value the plan finds (widths; [ALL_COLUMNS]: every column).")
      .def_static(
          "from_bytes",
          [](nb::bytes data, std::string name, std::string_view delimiter, std::string comment,
             std::string_view quote, std::uint64_t skiprows, std::int64_t max_rows,
             std::vector<std::int64_t> usecols, bool truncate, unsigned threads, bool one_pass,
             std::vector<std::int64_t> measure) {
            auto job = std::make_unique<text_job>();
            job->keep = data;
            std::string_view text(data.c_str(), data.size());
            job->format = make_format(delimiter, std::move(comment), quote, skiprows, max_rows,
                                      std::move(usecols), truncate, threads, std::move(measure));
            nb::gil_scoped_release unlocked;
            job->source = ndshm::text_source::borrow(text, std::move(name));
            job->plan_source(one_pass);
            return job.release();
          },
          "data"_a, "name"_a, "delimiter"_a, "comment"_a, "quote"_a, "skiprows"_a, "max_rows"_a, "usecols"_a,
          "truncate"_a, "threads"_a, "one_pass"_a, "measure"_a = std::vector<std::int64_t>{},
          nb::rv_policy::take_ownership,
          "Plans the rows of text held in memory (or streams them, as open does).")
      .def_prop_ro("rows",
                   [](const text_job &job) -> std::optional<std::uint64_t> {
                     if (job.streamed())
                       return std::nullopt;
                     return job.plan.rows;
                   })
      .def_prop_ro("streamed", [](const text_job &job) { return job.streamed(); },
                   "True for a stream parsed in one pass (parse_new), False for planned rows (parse).")
      .def_prop_ro("columns", [](const text_job &job) { return job.plan.columns; })
      .def_prop_ro("widths", [](const text_job &job) { return job.plan.widths; },
                   "The longest value of each measured column (see open's measure).")
      .def(
          "parse",
          [](text_job &job, const std::vector<field_tuple> &specs, std::uintptr_t address, std::uint64_t nbytes,
             std::uint64_t row_stride) {
            if (job.plan.rows * row_stride > nbytes)
              throw std::invalid_argument("ndshm: output buffer too small for the rows");
            if (job.streamed())
              throw std::invalid_argument("ndshm: a streamed job is parsed with parse_new");
            nb::gil_scoped_release unlocked;
            return to_tuple(ndshm::parse_rows(job.source, job.format, job.plan, to_fields(specs),
                                              reinterpret_cast<std::byte *>(address), row_stride));
          },
          "fields"_a, "address"_a, "nbytes"_a, "row_stride"_a,
          "Parses every planned row into the buffer at address (fields: kind, size, offset, big_endian, type "
          "name); returns what truncate cut, (values, file, line, column, text, field, widths), or None.")
      .def(
          "parse_new",
          [](text_job &job, const std::vector<field_tuple> &specs, std::uint64_t row_stride, bool shared,
             std::string session, std::string dtype, std::string shape_tail) {
            if (!job.streamed())
              throw std::invalid_argument("ndshm: parse_new is for streamed jobs");
            nb::gil_scoped_release unlocked;
            ndshm::growing_segment segment(std::move(session));
            auto fields = to_fields(specs);
            auto room = [&](std::uint64_t nbytes) { return segment.reserve(nbytes); };
            auto plan = job.blocks ? ndshm::parse_stream(*job.blocks, job.format, fields, row_stride, room)
                                   : ndshm::parse_one_pass(job.source, job.format, fields, row_stride, room);
            if (!shared)
              return std::make_tuple(segment.finish_private(plan.rows * row_stride), plan.rows,
                                     to_tuple(std::move(plan.truncated)));
            ndshm::segment_options options;
            options.size = plan.rows * row_stride;
            options.meta = {std::move(dtype), "(" + std::to_string(plan.rows) + shape_tail};
            return std::make_tuple(segment.finish(options), plan.rows, to_tuple(std::move(plan.truncated)));
          },
          "fields"_a, "row_stride"_a, "shared"_a, "session"_a, "dtype"_a, "shape_tail"_a,
          "Parses a streamed job in one pass into memory that grows as rows arrive; returns (Mapping, rows, "
          "what was cut as parse says): "
          "a new shared segment, or with shared=False private memory (a Mapping without a name). shape_tail "
          "completes the listed shape after the row count, e.g. ', 5)' or ',)'.");

  m.attr("ALL_COLUMNS") = ndshm::all_columns;
  m.def(
      "parse_handle",
      [](std::string_view text) {
        auto h = ndshm::array_handle::parse(text);
        return nb::make_tuple(h.session, h.name, h.ticket, h.offset, h.itemsize, nb::tuple(nb::cast(h.shape)),
                              nb::tuple(nb::cast(h.strides)), h.descr);
      },
      "text"_a, "Splits a handle into (session, name, ticket, offset, itemsize, shape, strides, descr).");
  bind_codecs(m);
  m.def(
      "format_handle",
      [](std::string session, std::string name, std::uint64_t ticket, std::uint64_t offset, std::uint64_t itemsize,
         std::vector<std::int64_t> shape, std::vector<std::int64_t> strides, std::string descr) {
        return ndshm::array_handle{std::move(session), std::move(name), ticket, offset, itemsize,
                                   std::move(shape), std::move(strides), std::move(descr)}
            .to_string();
      },
      "session"_a, "name"_a, "ticket"_a, "offset"_a, "itemsize"_a, "shape"_a, "strides"_a, "descr"_a);
}
