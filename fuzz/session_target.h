// The session fuzz target: a studio session file (app/session_file.h), that is its JSON and the sidecar of
// maps it names, loaded the way File > Open Session does, and its maps read the way the views read them.
// Built with the studio (Qt): fuzz_session under SDRPN_BUILD_FUZZ, and tests/gui/test_session_fuzz, which
// replays fuzz/seeds/session/ and tests/data/fuzz/session/ and mutates the seeds.
//
// An input is the JSON, optionally followed by a line "--sidecar--" and the sidecar's bytes; the seeds'
// JSON names the sidecar "s.maps.safetensors". The contract: a session, or none with a message; anything
// else (a crash, a sanitizer report, an exception escaping, no session and no message) aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sdrpn::fuzz {

int runSession(const std::uint8_t* data, std::size_t size);
// The message of this thread's last refused input ("" when it loaded).
const std::string& lastSessionRefusal();

}  // namespace sdrpn::fuzz
