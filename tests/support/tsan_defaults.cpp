// Linked into the threads_test_* executables only (ThreadSanitizer, tests/CMakeLists.txt): the options and
// suppressions TSan reads at start-up, and one thread for LibTorch's OpenMP pool (libgomp) and OpenBLAS's,
// which are not instrumented. Set here rather than by environment so that running an executable by hand
// checks the same way ctest does.
#include <dlfcn.h>

#include <cstdlib>

#include <ATen/Parallel.h>

extern "C" const char* __tsan_default_options() {
    return "halt_on_error=1:second_deadlock_stack=1:history_size=4";
}

// Only for code we do not build, which TSan cannot see synchronise: Qt is not instrumented, and hands
// objects between threads under its own futex-based locks and atomics.
extern "C" const char* __tsan_default_suppressions() {
    return
        // GDAL (loaded by OpenCV's image decoders) takes its own mutexes, on one thread, in an order TSan
        // calls inverted.
        "deadlock:libgdal.so\n"
        // Queued calls and posted events: made on one thread, run and freed on another.
        "race:qobjectdefs_impl.h\n"
        "race:QMetaObject::invokeMethodImpl\n"
        "race:QCoreApplicationPrivate::sendPostedEvents\n"
        // A QPointer's shared count block, released by whichever side drops it last.
        "race:QObject::~QObject\n"
        "race:QWeakPointer\n"
        // QThreadPool's wait conditions and Qt's implicitly shared arrays.
        "race:QWaitCondition::~QWaitCondition\n"
        "race:QArrayData\n";
}

namespace {

const bool kOneThread = [] {
    ::setenv("QT_QPA_PLATFORM", "offscreen", 0);
    at::set_num_threads(1);
    // OpenBLAS has a thread pool of its own, started before this runs.
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
    return true;
}();

}  // namespace
