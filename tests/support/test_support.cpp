#include "tests/support/test_support.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace sdrpn::test {

std::string dataPath(const std::string& relative) {
    return std::string(SDRPN_TEST_DATA_DIR) + "/" + relative;
}

std::string fixturePath(const std::string& name) {
    return dataPath("fixtures/" + name);
}

namespace {
struct ScratchRoot {
    fs::path root;
    ScratchRoot() {
        root = fs::path(SDRPN_BINARY_DIR) / "test-scratch" / ("pid" + std::to_string(::getpid()));
        fs::create_directories(root);
    }
    ~ScratchRoot() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};
}  // namespace

std::string scratchDir(const std::string& tag) {
    static ScratchRoot scratch;
    static std::atomic<int> counter{0};
    std::string name = std::to_string(counter++);
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
        name += std::string("_") + info->test_suite_name() + "." + info->name();
    if (!tag.empty()) name += "_" + tag;
    for (char& c : name)
        if (c == '/') c = '_';
    fs::path dir = scratch.root / name;
    fs::create_directories(dir);
    return dir.string();
}

std::string sdrpnExecutable() {
    return std::string(SDRPN_BINARY_DIR) + "/cli/sdrpn";
}

std::string shellQuote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

int runCommand(const std::string& command, std::string* output) {
    const std::string log = scratchDir("log") + "/out.txt";
    const int rc = std::system((command + " >" + log + " 2>&1").c_str());
    if (output) {
        std::ifstream in(log);
        output->assign(std::istreambuf_iterator<char>(in), {});
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

::testing::AssertionResult tensorsNear(const torch::Tensor& actual, const torch::Tensor& expected,
                                       double atol, double rtol) {
    if (!actual.defined() || !expected.defined()) return ::testing::AssertionFailure() << "undefined tensor";
    if (actual.sizes() != expected.sizes())
        return ::testing::AssertionFailure()
               << "shape " << actual.sizes() << " != expected " << expected.sizes();
    auto a = actual.detach().to(torch::kCPU, torch::kDouble).contiguous();
    auto b = expected.detach().to(torch::kCPU, torch::kDouble).contiguous();
    if (a.numel() == 0) return ::testing::AssertionSuccess();
    auto nanMismatch = (a.isnan() != b.isnan()).any().item<bool>();
    if (nanMismatch) return ::testing::AssertionFailure() << "NaN pattern differs";
    auto diff = (a - b).abs().nan_to_num(0.0);
    auto allowed = atol + rtol * b.abs().nan_to_num(0.0);
    auto excess = diff - allowed;
    auto worst = excess.flatten().argmax().item<int64_t>();
    double worstExcess = excess.flatten()[worst].item<double>();
    if (worstExcess <= 0) return ::testing::AssertionSuccess();
    std::ostringstream os;
    os << "max |diff| " << diff.max().item<double>() << " > atol " << atol << " (rtol " << rtol
       << "); worst at flat index " << worst << ": actual " << a.flatten()[worst].item<double>()
       << ", expected " << b.flatten()[worst].item<double>() << "; " << (diff > allowed).sum().item<int64_t>()
       << " of " << a.numel() << " elements out of tolerance";
    return ::testing::AssertionFailure() << os.str();
}

}  // namespace sdrpn::test
