// ndshm._core: the nanobind module. It converts types, attaches docstrings and releases the GIL; no logic.
#include <cerrno>
#include <system_error>

#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "ndshm/errors.hpp"
#include "ndshm/handle.hpp"
#include "ndshm/session.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using release_gil = nb::call_guard<nb::gil_scoped_release>;

namespace {

PyObject *g_segment_not_found = nullptr;
PyObject *g_broker_error = nullptr;

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
    } catch (const std::system_error &e) {
      raise_os_error(PyExc_OSError, e.code().value(), e.what());
    }
  });

  nb::class_<ndshm::mapping>(m, "Mapping",
                              "One mapping of a shared segment; numpy arrays over it keep it alive.",
                              nb::type_slots(mapping_slots))
      .def_prop_ro("name", &ndshm::mapping::name)
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
         std::string shape) {
        return ndshm::create_segment({size, std::move(session), std::move(name), named,
                                      {std::move(dtype), std::move(shape)}});
      },
      "size"_a, "session"_a = "", "name"_a = "", "named"_a = false, "dtype"_a = "", "shape"_a = "",
      release_gil(), "Creates a zero-filled segment (pages reserved up front) and maps it.");
  m.def(
      "attach",
      [](std::string_view session, std::string_view name, bool writable, bool redeem) {
        return ndshm::attach_segment(session, name,
                                     writable ? ndshm::access::read_write : ndshm::access::read_only,
                                     redeem);
      },
      "session"_a, "name"_a, "writable"_a = true, "redeem"_a = false, release_gil(),
      "Maps an existing segment; redeem consumes one ticket.");
  m.def("issue_ticket", &ndshm::issue_ticket, "segment"_a, release_gil(),
        "Keeps the segment alive for one future attach with redeem=True.");
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
          row["age"] = e.age_seconds;
          row["holders"] = e.holders;
          result.append(row);
        }
        return result;
      },
      "session"_a, "Live segments of a session, as dicts (empty if no broker runs).");
  m.def("collect_orphans", &ndshm::collect_orphans, "session"_a, "min_age"_a, release_gil());
  m.def("list_sessions", &ndshm::list_sessions, release_gil());
  m.def("broker_pid", &ndshm::broker_pid, "session"_a, release_gil());
  m.def("disconnect", &ndshm::disconnect, "session"_a, release_gil());
  m.def("default_session", &ndshm::default_session);
  m.def("set_broker_path", &ndshm::set_broker_path, "path"_a);

  m.def(
      "parse_handle",
      [](std::string_view text) {
        auto h = ndshm::array_handle::parse(text);
        return nb::make_tuple(h.session, h.name, h.offset, h.itemsize, nb::tuple(nb::cast(h.shape)),
                              nb::tuple(nb::cast(h.strides)), h.descr);
      },
      "text"_a, "Splits a handle into (session, name, offset, itemsize, shape, strides, descr).");
  m.def(
      "format_handle",
      [](std::string session, std::string name, std::uint64_t offset, std::uint64_t itemsize,
         std::vector<std::int64_t> shape, std::vector<std::int64_t> strides, std::string descr) {
        return ndshm::array_handle{std::move(session), std::move(name), offset, itemsize,
                                   std::move(shape), std::move(strides), std::move(descr)}
            .to_string();
      },
      "session"_a, "name"_a, "offset"_a, "itemsize"_a, "shape"_a, "strides"_a, "descr"_a);
}
