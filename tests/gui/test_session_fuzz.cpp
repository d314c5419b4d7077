// Session files against damage (fuzz/session_target.h): the seeds (fuzz/seeds/session/) and every input
// that once broke the loader (tests/data/fuzz/session/) replayed with their truncations, then thousands of
// seeded mutations of a session the studio itself writes (numbers swapped for huge, negative and fractional
// ones, bytes flipped, cut, repeated), in the JSON and in the sidecar's header. The target aborts on a
// crash, an escaping exception or a refusal without a message.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include <QFile>

#include "app/session_file.h"
#include "fuzz/session_target.h"
#include "tests/gui/gui_test_support.h"
#include "tests/support/fuzz_inputs.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using sdrpn::test::filesIn;

namespace {

using Bytes = std::string;

Bytes readBytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

int run(const Bytes& b) {
    return sdrpn::fuzz::runSession(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
}

// A session as the studio writes it, with maps (two rows of one head on a 24 x 24 grid, layers 1 and 3)
// and a RoI, packed as the target's input: the JSON, "--sidecar--", the sidecar.
Bytes studioSession() {
    StudioSession s;
    s.imagePath = "image.png";
    s.question = QStringLiteral("What colour is the small square?");
    s.answer = QStringLiteral("Red.");
    s.roiAnswer = QStringLiteral("Red");
    s.modelFolder = "model";
    auto q = std::make_shared<QuestionResult>();
    q->question = s.question;
    q->answer = s.answer;
    q->imageSize = QSize(640, 480);
    q->geometry.sourceWidth = 640;
    q->geometry.sourceHeight = 480;
    auto& m = q->maps;
    m.heads = 1;
    m.imageKeys = 576;
    for (int k = 0; k < 576; ++k) m.imageKeyPositions.push_back(5 + k);
    m.imageSpans = {{5, 576, {24, 24}}};
    m.rows = {{600, 7, sdrpn::models::QueryKind::LastPrompt}, {601, 9, sdrpn::models::QueryKind::Answer}};
    for (int layer : {1, 3}) {
        sdrpn::models::LayerAttention la;
        la.layer = layer;
        for (int i = 0; i < 2 * 576; ++i) la.values.push_back(float((i * 7 + layer) % 97) / 97.0f);
        m.layers.push_back(std::move(la));
    }
    s.maps = q;
    auto roi = std::make_shared<TwoStageAnswer>();
    roi->question = s.question;
    roi->baselineAnswer = s.answer;
    roi->roiAnswer = s.roiAnswer;
    roi->imageSize = q->imageSize;
    roi->geometry = q->geometry;
    roi->rows = roi->cols = 24;
    for (int i = 0; i < 576; ++i)
        roi->roiLogits.push_back((i / 24 > 8 && i / 24 < 12 && i % 24 > 4 && i % 24 < 9) ? 3.0f : -3.0f);
    s.roi = roi;
    const std::string dir = sdrpn::test::scratchDir("session-seed");
    const QString path = QString::fromStdString(dir + "/s.json");
    QString error;
    if (!saveSessionFile(path, s, &error)) ADD_FAILURE() << error.toStdString();
    Bytes json = readBytes(dir + "/s.json");
    const Bytes sidecar = readBytes(dir + "/s.maps.safetensors");
    if (sidecar.empty()) ADD_FAILURE() << "no sidecar written";
    return json + "\n--sidecar--\n" + sidecar;
}

// One random change; most land in the JSON or the sidecar's header, where the parsing is.
void mutate(Bytes& b, std::mt19937& rng) {
    if (b.empty()) {
        b = "{";
        return;
    }
    const std::size_t split = b.find("--sidecar--");
    std::size_t headerEnd = b.size();
    if (split != Bytes::npos && split + 20 < b.size()) {
        std::uint64_t len = 0;
        for (int i = 7; i >= 0; --i) len = (len << 8) | std::uint8_t(b[split + 12 + std::size_t(i)]);
        headerEnd =
            std::min<std::size_t>(b.size(), split + 20 + std::size_t(std::min<std::uint64_t>(len, b.size())));
    }
    auto pick = [&](std::size_t end) { return std::uniform_int_distribution<std::size_t>(0, end - 1)(rng); };
    const std::size_t at = pick(rng() % 4 == 0 ? b.size() : headerEnd);
    static const char* const kNumbers[] = {"1e308",
                                           "-1",
                                           "0",
                                           "99999999999999999999",
                                           "0.5",
                                           "2147483648",
                                           "-9223372036854775809",
                                           "4096",
                                           "NaN",
                                           "1e-320",
                                           "[]",
                                           "{}",
                                           "null",
                                           "\"x\"",
                                           "true"};
    switch (rng() % 8) {
        case 0:  // a number (or any value) where a number was
        case 1: {
            std::size_t d = at;
            while (d < b.size() && !(std::isdigit(static_cast<unsigned char>(b[d])) != 0)) ++d;
            if (d == b.size()) d = at;
            std::size_t e = d;
            while (e < b.size() &&
                   (std::isdigit(static_cast<unsigned char>(b[e])) != 0 || b[e] == '.' || b[e] == '-'))
                ++e;
            b.replace(d, e - d, kNumbers[rng() % std::size(kNumbers)]);
            break;
        }
        case 2:
            b[at] = char(rng() & 0xff);
            break;
        case 3:
            b[at] = char(b[at] ^ (1 << (rng() % 8)));
            break;
        case 4:
            b.erase(at, std::min<std::size_t>(b.size() - at, 1 + rng() % 16));
            break;
        case 5:
            b.insert(at, b.substr(at, std::min<std::size_t>(b.size() - at, 1 + rng() % 32)));
            break;
        case 6:
            b.resize(at);
            break;
        default:
            b.insert(at, 1, "{}[],:\"0-"[rng() % 9]);
            break;
    }
}

}  // namespace

TEST(SessionFuzz, TheStudiosOwnSessionLoads) {
    const Bytes b = studioSession();
    ASSERT_EQ(run(b), 0);
    EXPECT_EQ(sdrpn::fuzz::lastSessionRefusal(), "");
    // SDRPN_SESSION_SEED=FILE writes it out: how fuzz/seeds/session/studio_session was made.
    if (const char* out = std::getenv("SDRPN_SESSION_SEED")) std::ofstream(out, std::ios::binary) << b;
}

TEST(SessionFuzz, SeedsAndFoundCrashesLoadOrAreRefusedWithAMessage) {
    const fs::path seeds = fs::path(SDRPN_SOURCE_DIR) / "fuzz" / "seeds" / "session";
    std::vector<fs::path> inputs = filesIn(seeds);
    ASSERT_FALSE(inputs.empty()) << seeds << " holds no seed";
    const std::size_t seedCount = inputs.size();
    for (const auto& f : filesIn(fs::path(SDRPN_TEST_DATA_DIR) / "fuzz" / "session")) inputs.push_back(f);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        SCOPED_TRACE(inputs[i].string());
        const Bytes b = readBytes(inputs[i]);
        EXPECT_EQ(run(b), 0);
        if (i < seedCount && inputs[i].filename().string().rfind("bad_", 0) != 0) {
            EXPECT_EQ(sdrpn::fuzz::lastSessionRefusal(), "") << "the seed is refused";
        }
        for (std::size_t n : {std::size_t(1), b.size() / 2, b.empty() ? 0 : b.size() - 1}) {
            EXPECT_EQ(run(b.substr(0, n)), 0) << n << " bytes";
            EXPECT_NE(sdrpn::fuzz::lastSessionRefusal(), "") << "a session cut to " << n << " bytes loaded";
        }
    }
}

TEST(SessionFuzz, ThousandsOfMutationsNeverCrash) {
    const Bytes seed = studioSession();
    std::mt19937 rng(0x5e551);
    int loaded = 0, refused = 0;
    for (int i = 0; i < 4000; ++i) {
        Bytes b = seed;
        const int changes = 1 + int(rng() % 4);
        for (int c = 0; c < changes; ++c) mutate(b, rng);
        run(b);
        (sdrpn::fuzz::lastSessionRefusal().empty() ? loaded : refused) += 1;
    }
    // Both outcomes happen: the mutations reach past the JSON parser, and damage is noticed.
    EXPECT_GT(loaded, 100);
    EXPECT_GT(refused, 100);
}
