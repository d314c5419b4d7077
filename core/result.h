// Result<T> and Status: how every public entry point of the core reports failure.
//
// Inside the core, code throws (sdrpn::Error, TORCH_CHECK, std exceptions). At the core's edge (anything the
// CLI or the studio calls) exceptions are turned into a Result with a code and a human message that names
// the file, key or value at fault. Cancel is not failure: it has its own code.
//
//   Result<Config> r = readConfig(dir);
//   if (!r) { std::cerr << r.status().message << "\n"; return 1; }
//   use(r.value());
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace sdrpn {

enum class StatusCode { Ok, Cancelled, Failed, OutOfMemory };

const char* statusCodeName(StatusCode code);

struct Status {
    StatusCode code = StatusCode::Ok;
    std::string message;

    bool ok() const { return code == StatusCode::Ok; }
    bool cancelled() const { return code == StatusCode::Cancelled; }

    static Status success() { return {}; }
    static Status failed(std::string msg) { return {StatusCode::Failed, std::move(msg)}; }
    static Status cancelledStatus(std::string msg = "cancelled") {
        return {StatusCode::Cancelled, std::move(msg)};
    }
    static Status outOfMemory(std::string msg) { return {StatusCode::OutOfMemory, std::move(msg)}; }
};

// Thrown inside the core; the message must name the culprit (file, key, value).
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Thrown by JobContext::throwIfCancelled(); converted to StatusCode::Cancelled at the edge.
class CancelledError : public std::runtime_error {
public:
    CancelledError() : std::runtime_error("cancelled") {}
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_value(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : m_status(std::move(status)) {
        if (m_status.ok()) m_status = Status::failed("internal error: empty result marked ok");
    }

    bool ok() const { return m_status.ok(); }
    explicit operator bool() const { return ok(); }
    const Status& status() const { return m_status; }
    const std::string& message() const { return m_status.message; }

    T& value() & {
        requireValue();
        return *m_value;
    }
    const T& value() const& {
        requireValue();
        return *m_value;
    }
    T&& value() && {
        requireValue();
        return std::move(*m_value);
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    void requireValue() const {
        if (!m_value) throw Error("Result has no value: " + m_status.message);
    }
    std::optional<T> m_value;
    Status m_status;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Status status) : m_status(std::move(status)) {}  // NOLINT
    bool ok() const { return m_status.ok(); }
    explicit operator bool() const { return ok(); }
    const Status& status() const { return m_status; }
    const std::string& message() const { return m_status.message; }

private:
    Status m_status;
};

// Status for the exception currently being handled; call only inside a catch block.
Status statusFromCurrentException();

// Runs f and turns any exception into a failed/cancelled Result. The one place the core's exceptions stop.
template <class F>
auto guarded(F&& f) -> Result<std::invoke_result_t<F>> {
    using T = std::invoke_result_t<F>;
    try {
        if constexpr (std::is_void_v<T>) {
            f();
            return Result<void>();
        } else {
            return Result<T>(f());
        }
    } catch (...) {
        return Result<T>(statusFromCurrentException());
    }
}

}  // namespace sdrpn
