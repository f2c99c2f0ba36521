// Typed errors of the public API; the bindings map each one to a Python exception.
#pragma once

#include <stdexcept>
#include <string>

namespace ndshm {

/// A segment name that the session's broker does not know: freed, never created, or from a broker
/// that has since exited. Maps to ndshm.SegmentNotFoundError (a FileNotFoundError).
class segment_not_found : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A segment name that is already taken (only named segments can collide). Maps to FileExistsError.
class segment_exists : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The session's broker could not be started or reached, or broke the protocol. Maps to ndshm.BrokerError.
class broker_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace ndshm
