// LabelStore: round trip within fp16 precision, resume-style duplicate skipping, a writer killed with
// SIGKILL mid-run, a reader while a writer runs, merging shards, schema / corrupt / read-only / full errors.
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <c10/util/Half.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/data/label_store.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::data;
namespace fs = std::filesystem;

namespace {

// A sample shaped like a LLaVA-7B one (§2.4): layer 14 heads {13, 24, 26}, the layer-2 head mean.
StoredSample makeSample(const std::string& key, unsigned seed, int extraMaps = 0) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> attention(0.0f, 0.05f);
    StoredSample s;
    s.dataset = "gqa";
    s.key = key;
    s.image = "images/" + key + ".jpg";
    s.question = "What is on the table? (" + key + ")";
    s.reference = "a cup";
    s.model = "llava-1.5-7b-hf";
    s.answer = "A cup " + std::to_string(seed);
    s.answerTokens = 3;
    s.settings = R"({"preset":"llava-1.5-7b"})";
    s.gridRows = 24;
    s.gridCols = 24;
    s.geometry = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
    s.modelLayers = 32;
    s.modelHeads = 32;
    s.seconds = 0.25;
    auto map = [&](int layer, int head) {
        StoredMap m;
        m.layer = layer;
        m.head = head;
        m.values.resize(576);
        for (float& v : m.values) v = attention(rng);
        return m;
    };
    s.maps = {map(2, kHeadMean), map(14, 13), map(14, 24), map(14, 26)};
    for (int i = 0; i < extraMaps; ++i) s.maps.push_back(map(20 + i / 32, i % 32));
    return s;
}

// The value a float comes back as after an fp16 round trip.
float viaHalf(float v) {
    return halfToFloat(floatToHalf(v));
}

void expectSameSample(const StoredSample& got, const StoredSample& want) {
    EXPECT_EQ(got.dataset, want.dataset);
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.image, want.image);
    EXPECT_EQ(got.question, want.question);
    EXPECT_EQ(got.reference, want.reference);
    EXPECT_EQ(got.model, want.model);
    EXPECT_EQ(got.answer, want.answer);
    EXPECT_EQ(got.answerTokens, want.answerTokens);
    EXPECT_EQ(got.settings, want.settings);
    EXPECT_EQ(got.gridRows, want.gridRows);
    EXPECT_EQ(got.gridCols, want.gridCols);
    const models::GridGeometry& g = got.geometry;
    const models::GridGeometry& w = want.geometry;
    EXPECT_EQ(g.fit, w.fit);
    EXPECT_EQ(g.sourceWidth, w.sourceWidth);
    EXPECT_EQ(g.sourceHeight, w.sourceHeight);
    EXPECT_EQ(g.processedWidth, w.processedWidth);
    EXPECT_EQ(g.processedHeight, w.processedHeight);
    EXPECT_EQ(g.gridRows, w.gridRows);
    EXPECT_EQ(g.gridCols, w.gridCols);
    EXPECT_EQ(g.scaleX, w.scaleX);  // exact: JSON numbers round-trip doubles
    EXPECT_EQ(g.scaleY, w.scaleY);
    EXPECT_EQ(g.offsetX, w.offsetX);
    EXPECT_EQ(g.offsetY, w.offsetY);
    EXPECT_EQ(g.resizedWidth, w.resizedWidth);
    EXPECT_EQ(g.resizedHeight, w.resizedHeight);
    EXPECT_EQ(g.padLeft, w.padLeft);
    EXPECT_EQ(g.padTop, w.padTop);
    EXPECT_EQ(g.cropLeft, w.cropLeft);
    EXPECT_EQ(g.cropTop, w.cropTop);
    EXPECT_EQ(got.modelLayers, want.modelLayers);
    EXPECT_EQ(got.modelHeads, want.modelHeads);
    EXPECT_DOUBLE_EQ(got.seconds, want.seconds);
    ASSERT_EQ(got.maps.size(), want.maps.size());
    for (const auto& w : want.maps) {
        const StoredMap* g = got.find(w.layer, w.head);
        ASSERT_NE(g, nullptr) << "layer " << w.layer << " head " << w.head;
        ASSERT_EQ(g->values.size(), w.values.size());
        for (std::size_t i = 0; i < w.values.size(); ++i) {
            ASSERT_EQ(g->values[i], viaHalf(w.values[i])) << i;
            // fp16: 11 significant bits, subnormals below 2^-14.
            ASSERT_NEAR(g->values[i], w.values[i], std::abs(w.values[i]) * 4.9e-4 + 3e-8) << i;
        }
    }
}

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const sdrpn::Error& e) {
        return e.what();
    }
    return "no error";
}

void rawSql(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    const std::string text = message ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << text;
}

std::string integrityCheck(const std::string& path) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    std::string result;
    sqlite3_exec(
        db, "PRAGMA integrity_check",
        [](void* out, int, char** values, char**) {
            *static_cast<std::string*>(out) += values[0] ? values[0] : "";
            return 0;
        },
        &result, nullptr);
    sqlite3_close(db);
    return result;
}

}  // namespace

TEST(Half, MatchesC10HalfBothWays) {
    std::mt19937 rng(7);
    std::vector<float> values = {0.0f, -0.0f, 1.0f,    -1.0f,    65504.0f, 65519.0f, 65520.0f,
                                 1e6f, -1e6f, 6.1e-5f, 6.0e-8f,  3.0e-8f,  2.9e-8f,  1e-10f,
                                 0.1f, 1e-3f, 0.333f,  5.96e-8f, 1.0f / 3, INFINITY, -INFINITY};
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (int i = 0; i < 20000; ++i) values.push_back(unit(rng) * std::pow(10.0f, -float(i % 9)));
    for (float v : values) {
        const c10::Half ref(v);
        EXPECT_EQ(floatToHalf(v), ref.x) << v;
        EXPECT_EQ(halfToFloat(ref.x), float(ref)) << v;
    }
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        c10::Half ref;
        ref.x = std::uint16_t(h);
        const float f = halfToFloat(std::uint16_t(h));
        if (std::isnan(float(ref))) {
            EXPECT_TRUE(std::isnan(f));
            EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(f))));
        } else {
            EXPECT_EQ(f, float(ref)) << h;
            EXPECT_EQ(floatToHalf(f), std::uint16_t(h)) << h;  // every half survives the round trip
        }
    }
}

TEST(LabelStore, RoundTripWithinFp16) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    StoredSample a = makeSample("17", 1);
    StoredSample b = makeSample("18", 2);
    b.reference.reset();
    b.dataset = "ocr_vqa";
    b.geometry = models::makeGridGeometry(500, 333, models::ImageFit::Crop);
    {
        LabelStore store = LabelStore::open(path);
        EXPECT_TRUE(store.put(a));
        EXPECT_TRUE(store.put(b));
    }
    LabelStore store = LabelStore::open(path);
    auto got = store.get("gqa", "17");
    ASSERT_TRUE(got);
    expectSameSample(*got, a);
    EXPECT_FALSE(got->created.empty());
    got = store.get("ocr_vqa", "18");
    ASSERT_TRUE(got);
    expectSameSample(*got, b);
    EXPECT_FALSE(store.get("gqa", "18"));

    EXPECT_EQ(store.count(), 2);
    EXPECT_EQ(store.count("gqa"), 1);
    EXPECT_EQ(store.datasets(), (std::vector<std::string>{"gqa", "ocr_vqa"}));
    EXPECT_EQ(store.models(), (std::vector<std::string>{"llava-1.5-7b-hf"}));
    EXPECT_EQ(store.keys(""), (std::vector<std::string>{"17", "18"}));
    auto rows = store.list(0, 10);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1].dataset, "ocr_vqa");
    EXPECT_EQ(rows[1].mapCount, 4);
    EXPECT_EQ(store.list(1, 10).size(), 1u);

    // Maps come back sorted by (layer, head), the head mean first.
    ASSERT_EQ(got->maps.size(), 4u);
    EXPECT_EQ(got->maps[0].layer, 2);
    EXPECT_EQ(got->maps[0].head, kHeadMean);
    EXPECT_EQ(got->maps[1].head, 13);
}

TEST(LabelStore, PutSkipsSamplesAlreadyThere) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore store = LabelStore::open(path);
    EXPECT_TRUE(store.put(makeSample("1", 1)));
    EXPECT_FALSE(store.contains("gqa", "2"));
    StoredSample again = makeSample("1", 99);  // same key, other content: the first one stays
    EXPECT_FALSE(store.put(again));
    EXPECT_EQ(store.count(), 1);
    expectSameSample(*store.get("gqa", "1"), makeSample("1", 1));
    EXPECT_TRUE(store.contains("gqa", "1"));
}

TEST(LabelStore, SamplesWithoutMapsAndBadSamples) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore store = LabelStore::open(path);
    StoredSample eos = makeSample("eos", 1);
    eos.maps.clear();  // sdrpn.md §2.3 ⚠: the first token was EOS
    eos.answerTokens = 0;
    eos.answer = "";
    EXPECT_TRUE(store.put(eos));
    EXPECT_TRUE(store.get("gqa", "eos")->maps.empty());

    StoredSample bad = makeSample("bad", 1);
    bad.maps[1].values.resize(100);
    EXPECT_NE(errorOf([&] { store.put(bad); }).find("has 100 values"), std::string::npos);
    bad = makeSample("bad", 1);
    bad.maps.push_back(bad.maps[1]);
    EXPECT_NE(errorOf([&] { store.put(bad); }).find("stored twice"), std::string::npos);
    bad = makeSample("bad", 1);
    bad.settings = "{not json";
    EXPECT_NE(errorOf([&] { store.put(bad); }).find("not valid JSON"), std::string::npos);
    EXPECT_FALSE(store.contains("gqa", "bad"));
}

TEST(LabelStore, MeanMapsAndAttentionMaps) {
    StoredSample s = makeSample("1", 3);
    const std::vector<float> h13 = s.find(14, 13)->values;  // copies: s.maps grows below
    const std::vector<float> h24 = s.find(14, 24)->values;
    const std::vector<float> h26 = s.find(14, 26)->values;
    auto grounding = s.meanMap(14, {24, 13, 26});
    ASSERT_TRUE(grounding);
    EXPECT_NEAR((*grounding)[5], (h13[5] + h24[5] + h26[5]) / 3, 1e-7);
    EXPECT_FALSE(s.meanMap(14, {24, 13, 25}));  // head 25 was not stored
    EXPECT_FALSE(s.meanMap(14, {}));            // neither was layer 14's head mean
    auto sink = s.meanMap(2, {});
    ASSERT_TRUE(sink);
    EXPECT_EQ(*sink, s.find(2, kHeadMean)->values);
    std::vector<int> everyHead(32);
    for (int h = 0; h < 32; ++h) everyHead[std::size_t(h)] = h;
    EXPECT_EQ(*s.meanMap(2, everyHead), s.find(2, kHeadMean)->values);
    EXPECT_FALSE(s.meanMap(2, {0}));

    // As a capture: one Answer row; stored heads exact, head means preserved, unknown heads NaN.
    s.maps.push_back({14, kHeadMean, std::vector<float>(576, 0.01f)});
    models::AttentionMaps maps = s.toAttentionMaps();
    EXPECT_EQ(maps.heads, 32);
    EXPECT_EQ(maps.imageKeys, 576);
    ASSERT_EQ(maps.rows.size(), 1u);
    EXPECT_EQ(maps.rows[0].kind, models::QueryKind::Answer);
    ASSERT_EQ(maps.layers.size(), 2u);
    const int slot14 = maps.slotOf(14);
    ASSERT_GE(slot14, 0);
    EXPECT_EQ(maps.at(std::size_t(slot14), 24, 0, 7), h24[7]);
    double mean14 = 0, mean2 = 0;
    for (int h = 0; h < 32; ++h) {
        mean14 += maps.at(std::size_t(slot14), h, 0, 7) / 32.0;
        mean2 += maps.at(std::size_t(maps.slotOf(2)), h, 0, 7) / 32.0;
    }
    EXPECT_NEAR(mean14, 0.01, 1e-7);
    EXPECT_NEAR(mean2, s.find(2, kHeadMean)->values[7], 1e-7);

    s.maps.pop_back();
    maps = s.toAttentionMaps();
    EXPECT_TRUE(std::isnan(maps.at(std::size_t(maps.slotOf(14)), 0, 0, 7)));
}

// A child process writes samples as fast as it can and reports each commit through a pipe; the parent
// SIGKILLs it mid-run. Every reported sample must be there and intact, and the store must open and write.
TEST(LabelStore, SurvivesKill9MidRun) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore::open(path);  // created up front so the child only writes samples
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(fds[0]);
        try {
            LabelStore store = LabelStore::open(path);  // its own connection, after the fork
            for (std::uint32_t i = 0;; ++i) {
                store.put(makeSample(std::to_string(i), i, /*extraMaps*/ 60));
                if (::write(fds[1], &i, sizeof i) != sizeof i) ::_exit(3);
            }
        } catch (...) {
            ::_exit(2);
        }
    }
    ::close(fds[1]);
    std::uint32_t last = 0;
    std::int64_t reported = 0;
    while (reported < 25 && ::read(fds[0], &last, sizeof last) == sizeof last) ++reported;
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child writer stopped by itself (status " << status << ")";
    while (::read(fds[0], &last, sizeof last) == sizeof last) ++reported;  // commits reported before death
    ::close(fds[0]);
    ASSERT_GE(reported, 25);

    EXPECT_EQ(integrityCheck(path), "ok");
    LabelStore store = LabelStore::open(path);
    const std::int64_t count = store.count();
    EXPECT_GE(count, reported);
    EXPECT_LE(count, reported + 1);  // at most the sample in flight committed without being reported
    for (std::int64_t i = 0; i < count; ++i) {
        auto s = store.get("gqa", std::to_string(i));
        ASSERT_TRUE(s) << i;
        expectSameSample(*s, makeSample(std::to_string(i), std::uint32_t(i), 60));
    }
    EXPECT_TRUE(store.put(makeSample("after", 1)));
    EXPECT_EQ(store.count(), count + 1);
}

TEST(LabelStore, ReaderSeesCommittedSamplesWhileAWriterRuns) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore writer = LabelStore::open(path);
    constexpr int kSamples = 150;
    std::atomic<bool> done{false};
    std::atomic<int> written{0};
    std::string writerError;
    std::thread job([&] {
        try {
            for (int i = 0; i < kSamples; ++i) {
                writer.put(makeSample(std::to_string(i), std::uint32_t(i), 8));
                written.store(i + 1);
            }
        } catch (const std::exception& e) {
            writerError = e.what();
        }
        done.store(true);
    });

    LabelStore::Options readOnly;
    readOnly.access = LabelStore::Access::ReadOnly;
    LabelStore reader = LabelStore::open(path, readOnly);
    std::int64_t lastCount = 0;
    int reads = 0;
    while (!done.load()) {
        const int before = written.load();
        const std::int64_t n = reader.count();
        EXPECT_GE(n, before);  // whatever was committed is visible
        EXPECT_GE(n, lastCount);
        lastCount = n;
        if (n > 0) {
            auto s = reader.get("gqa", std::to_string(n - 1));
            ASSERT_TRUE(s);
            EXPECT_EQ(s->maps.size(), 12u);  // never a half-written sample
        }
        ++reads;
    }
    job.join();
    EXPECT_EQ(writerError, "");
    EXPECT_EQ(reader.count(), kSamples);
    EXPECT_GT(reads, 0);
    int visited = 0;
    reader.forEach([&](const StoredSample& s) {
        EXPECT_EQ(s.key, std::to_string(visited));
        ++visited;
        return true;
    });
    EXPECT_EQ(visited, kSamples);
    EXPECT_NE(errorOf([&] { reader.put(makeSample("x", 1)); }).find(path + ": read-only"), std::string::npos);
}

TEST(LabelStore, MergeShardsSkipsDuplicatesAndReportsConflicts) {
    const std::string dir = test::scratchDir();
    const std::string a = dir + "/shard0.sdrpn", b = dir + "/shard1.sdrpn", out = dir + "/all.sdrpn";
    {
        LabelStore s0 = LabelStore::open(a);
        LabelStore s1 = LabelStore::open(b);
        for (int i = 0; i < 10; ++i) (i % 2 ? s1 : s0).put(makeSample(std::to_string(i), std::uint32_t(i)));
        s1.put(makeSample("0", 0));  // identical to shard 0's: a duplicate
        StoredSample other = makeSample("2", 2);
        other.answer = "something else";
        s1.put(other);  // same key, different answer: a conflict
    }
    MergeReport r = mergeStores(out, {a, b});
    EXPECT_EQ(r.added, 10);
    EXPECT_EQ(r.duplicates, 1);
    ASSERT_EQ(r.conflicts.size(), 1u);
    EXPECT_EQ(r.conflicts[0].key, "2");
    EXPECT_EQ(r.conflicts[0].input, b);
    EXPECT_EQ(r.conflicts[0].reason, "answer");

    LabelStore merged = LabelStore::open(out);
    EXPECT_EQ(merged.count(), 10);
    for (int i = 0; i < 10; ++i) {
        auto s = merged.get("gqa", std::to_string(i));
        ASSERT_TRUE(s);
        StoredSample want = makeSample(std::to_string(i), std::uint32_t(i));
        expectSameSample(*s, want);
    }
    // Merging again adds nothing; a store cannot be merged into itself; a missing input is named.
    MergeReport again = mergeStores(out, {a});
    EXPECT_EQ(again.added, 0);
    EXPECT_EQ(again.duplicates, 5);
    EXPECT_NE(errorOf([&] { mergeStores(out, {out}); }).find("into itself"), std::string::npos);
    EXPECT_NE(
        errorOf([&] { mergeStores(out, {dir + "/nope.sdrpn"}); }).find("nope.sdrpn: no such label store"),
        std::string::npos);
}

TEST(LabelStore, SchemaErrorsAreClear) {
    const std::string dir = test::scratchDir();
    const std::string newer = dir + "/newer.sdrpn";
    LabelStore::open(newer).put(makeSample("1", 1));
    rawSql(newer, "UPDATE schema_version SET version = 7");
    std::string e = errorOf([&] { LabelStore::open(newer); });
    EXPECT_NE(e.find(newer + ": written by a newer SD-RPN Studio (label store schema version 7"),
              std::string::npos)
        << e;

    const std::string foreign = dir + "/foreign.db";
    rawSql(foreign, "CREATE TABLE photos(id INTEGER, path TEXT)");
    e = errorOf([&] { LabelStore::open(foreign); });
    EXPECT_NE(e.find(foreign + ": an SQLite database, but not an SD-RPN label store"), std::string::npos)
        << e;
    EXPECT_NE(e.find("photos"), std::string::npos) << e;
    // The foreign file was not touched: still in its own journal mode, no tables added.
    EXPECT_FALSE(fs::exists(foreign + "-wal"));

    const std::string other = dir + "/other.db";
    rawSql(other,
           "CREATE TABLE schema_version(application TEXT, version INTEGER);"
           "INSERT INTO schema_version VALUES('someone-else', 1)");
    e = errorOf([&] { LabelStore::open(other); });
    EXPECT_NE(e.find("not an SD-RPN label store (its schema_version says 'someone-else')"), std::string::npos)
        << e;

    LabelStore::Options readOnly;
    readOnly.access = LabelStore::Access::ReadOnly;
    e = errorOf([&] { LabelStore::open(dir + "/missing.sdrpn", readOnly); });
    EXPECT_NE(e.find("missing.sdrpn: no such label store"), std::string::npos) << e;
    e = errorOf([&] { LabelStore::open(dir); });
    EXPECT_NE(e.find("is a folder"), std::string::npos) << e;
    e = errorOf([&] { LabelStore::open(dir + "/no/such/folder/x.sdrpn"); });
    EXPECT_NE(e.find("x.sdrpn: cannot open"), std::string::npos) << e;
}

TEST(LabelStore, CorruptFilesGiveAClearError) {
    const std::string dir = test::scratchDir();
    const std::string garbage = dir + "/garbage.sdrpn";
    {
        std::ofstream out(garbage, std::ios::binary);
        std::mt19937 rng(1);
        for (int i = 0; i < 8192; ++i) out.put(char(rng()));
    }
    std::string e = errorOf([&] { LabelStore::open(garbage); });
    EXPECT_NE(e.find(garbage + ": not an SQLite database"), std::string::npos) << e;

    // A real store whose pages were overwritten after the header: open or read fails naming the file.
    const std::string damaged = dir + "/damaged.sdrpn";
    {
        LabelStore store = LabelStore::open(damaged);
        for (int i = 0; i < 20; ++i) store.put(makeSample(std::to_string(i), std::uint32_t(i)));
    }
    ASSERT_FALSE(fs::exists(damaged + "-wal") && fs::file_size(damaged + "-wal") > 0);
    {
        std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(100);  // the first page's b-tree header: sqlite_master itself
        for (int i = 0; i < 3000; ++i) f.put(char(0xA5));
    }
    e = errorOf([&] {
        LabelStore store = LabelStore::open(damaged);
        store.forEach([](const StoredSample&) { return true; });
    });
    EXPECT_EQ(e.rfind(damaged + ": ", 0), 0u) << e;
    EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
}

// A store is outside input: rows that SQLite reads back fine but that no write would have made are refused
// on reading, naming the file and the sample, before anything sizes an allocation by them.
TEST(LabelStore, RowsNoWriteWouldMakeAreRefusedOnReading) {
    const std::string dir = test::scratchDir();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"UPDATE samples SET grid_rows = 100000", "grid"},
        {"UPDATE samples SET grid_cols = -2", "grid"},
        {"UPDATE samples SET model_heads = 4000000000", "head count"},
        {"UPDATE samples SET answer_tokens = -1", "answer token count"},
        {"UPDATE maps SET head = -7 WHERE layer = 2", "bad map"},
        {"UPDATE maps SET layer = 70000 WHERE layer = 2", "bad map"},
        {"UPDATE maps SET data = x'0000'", "values"},
        {"UPDATE samples SET geometry = replace(geometry, '\"source\":[640', '\"source\":[1e300')", "source"},
        {"UPDATE samples SET geometry = '{\"fit\": 3}'", "fit"},
        {"UPDATE samples SET geometry = '[]'", "geometry"},
    };
    int n = 0;
    for (const auto& [sql, culprit] : cases) {
        SCOPED_TRACE(sql);
        const std::string path = dir + "/store" + std::to_string(n++) + ".sdrpn";
        LabelStore::open(path).put(makeSample("1", 1));
        rawSql(path, sql);
        LabelStore::Options readOnly;
        readOnly.access = LabelStore::Access::ReadOnly;
        const LabelStore store = LabelStore::open(path, readOnly);
        std::string e = errorOf([&] { store.get("gqa", "1"); });
        EXPECT_EQ(e.rfind(path + ": sample gqa/1", 0), 0u) << e;
        EXPECT_NE(e.find(culprit), std::string::npos) << e;
        e = errorOf([&] { store.forEach([](const StoredSample&) { return true; }); });
        EXPECT_NE(e.find(culprit), std::string::npos) << e;
    }
}

TEST(LabelStore, FullDiskRollsBackTheSampleAndKeepsTheRest) {
    const std::string dir = test::scratchDir();
    const std::string path = dir + "/labels.sdrpn";
    {
        LabelStore::Options small;
        small.maxPageCount = 40;  // ~160 KB: a full disk on demand
        LabelStore store = LabelStore::open(path, small);
        std::string e;
        int stored = 0;
        for (int i = 0; i < 100 && e.empty(); ++i) {
            e = errorOf([&] { store.put(makeSample(std::to_string(i), std::uint32_t(i), 8)); });
            if (e == "no error") {
                e.clear();
                ++stored;
            }
        }
        EXPECT_NE(e.find(path + ": disk full"), std::string::npos) << e;
        EXPECT_NE(e.find("while writing sample gqa/" + std::to_string(stored)), std::string::npos) << e;
        EXPECT_GT(stored, 0);
        EXPECT_EQ(store.count(), stored);  // the failed sample was rolled back, the others are intact
        EXPECT_FALSE(store.contains("gqa", std::to_string(stored)));
    }
    EXPECT_EQ(integrityCheck(path), "ok");
}

TEST(LabelStore, ReadOnlyFileIsNamed) {
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore::open(path).put(makeSample("1", 1));
    fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    std::string e;
    if (::geteuid() == 0) {
        // File permissions do not stop root: open it as the unprivileged user `nobody` instead.
        constexpr uid_t kNobody = 65534;
        ASSERT_EQ(::seteuid(kNobody), 0) << std::strerror(errno);
        e = errorOf([&] { LabelStore::open(path); });
        ASSERT_EQ(::seteuid(0), 0) << std::strerror(errno);
    } else {
        e = errorOf([&] { LabelStore::open(path); });
    }
    EXPECT_NE(e.find(path + ": read-only"), std::string::npos) << e;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}
