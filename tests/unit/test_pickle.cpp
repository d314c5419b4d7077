// The restricted unpickler on pickles written by Python itself (tests/data/io/make_pickles.py): numpy
// arrays at protocols 2 to 5 compared bit for bit with raw references, SD-RPN style label lists, nested
// containers and shared objects; a pickle that calls os.system is refused without running it; truncated and
// hand-made hostile inputs fail cleanly.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/pickle.h"
#include "core/result.h"
#include "tests/support/python_inputs.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn;
using namespace sdrpn::io;

namespace {

std::vector<std::uint8_t> readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Reference {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
};

std::map<std::string, Reference> readReference(const std::string& folder) {
    std::ifstream in(folder + "/manifest.json");
    nlohmann::json manifest = nlohmann::json::parse(in);
    std::map<std::string, Reference> out;
    for (auto it = manifest.begin(); it != manifest.end(); ++it) {
        Reference r;
        r.dtype = (*it)["dtype"].get<std::string>();
        r.shape = (*it)["shape"].get<std::vector<std::int64_t>>();
        r.bytes = readBytes(folder + "/" + (*it)["file"].get<std::string>());
        out[it.key()] = std::move(r);
    }
    return out;
}

::testing::AssertionResult sameArray(const NdArray& a, const Reference& r) {
    if (dtypeName(a.dtype) != r.dtype)
        return ::testing::AssertionFailure() << "dtype " << dtypeName(a.dtype) << " != " << r.dtype;
    if (a.shape != r.shape) return ::testing::AssertionFailure() << "shape differs";
    if (a.data != r.bytes) return ::testing::AssertionFailure() << "bytes differ";
    return ::testing::AssertionSuccess();
}

class PickleTest : public test::GeneratedInputs<PickleTest> {
protected:
    static void SetUpTestSuite() { generate("pickles", "io/make_pickles.py", "pickles"); }
};

std::string errorOf(const std::vector<std::uint8_t>& bytes, UnpickleOptions options = {}) {
    try {
        unpickle(bytes.data(), bytes.size(), options);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_F(PickleTest, NumpyArraysAtEveryProtocolMatchTheReference) {
    const auto ref = readReference(path("arrays_ref"));
    for (int protocol : {2, 3, 4, 5}) {
        SCOPED_TRACE("protocol " + std::to_string(protocol));
        const PickleValue v = unpickleFile(path("arrays_p" + std::to_string(protocol) + ".pkl"));
        ASSERT_TRUE(v.isDict());
        for (const auto& [name, r] : ref) {
            if (name.rfind("scalar", 0) == 0) continue;
            SCOPED_TRACE(name);
            const PickleValue* a = v.get(name);
            ASSERT_NE(a, nullptr);
            ASSERT_TRUE(a->isArray()) << a->kindName();
            EXPECT_TRUE(sameArray(a->array(), r));
        }
        ASSERT_NE(v.get("scalar_f"), nullptr);
        EXPECT_DOUBLE_EQ(v.get("scalar_f")->toDouble(), 2.5);
        EXPECT_EQ(v.get("scalar_i")->toInt(), -12345678901LL);
        const NdArray& f = v.get("f32_576")->array();
        EXPECT_EQ(f.numel(), 576);
        EXPECT_FLOAT_EQ(f.toFloat32()[7], 1.0f);
        EXPECT_EQ(v.get("f32_24x24")->array().shape, (std::vector<std::int64_t>{24, 24}));
        EXPECT_EQ(v.get("bool")->array().toFloat32(), (std::vector<float>{1, 0, 1, 0, 0, 1}));
        EXPECT_FLOAT_EQ(v.get("big_endian")->array().toFloat32()[3], 1.0f);
    }
}

TEST_F(PickleTest, LabelListsLikeSdRpnReleases) {
    const auto ref = readReference(path("labels_ref"));
    for (int protocol : {2, 3, 4, 5}) {
        SCOPED_TRACE("protocol " + std::to_string(protocol));
        const PickleValue v = unpickleFile(path("labels_p" + std::to_string(protocol) + ".pkl"));
        ASSERT_EQ(v.list().size(), 4u);
        for (std::size_t i = 0; i < 4; ++i) {
            const PickleValue& item = v.list()[i];
            char id[16];
            std::snprintf(id, sizeof id, "q%05zu", i);
            EXPECT_EQ(item.get("question_id")->str(), id);
            EXPECT_EQ(item.get("prompt")->str(), "What colour is the small square? \xc3\xa9\xe4\xb8\xad");
            EXPECT_EQ(item.get("text")->str(), "The square is red.");
            EXPECT_EQ(item.get("image")->str().substr(0, 12), "images/demo_");
            EXPECT_TRUE(sameArray(item.get("sink_attn")->array(), ref.at(std::to_string(i) + "/sink_attn")));
            EXPECT_TRUE(sameArray(item.get("grounding_attn_o2i")->array(),
                                  ref.at(std::to_string(i) + "/grounding_attn_o2i")));
            const PickleValue* q2i = item.get("grounding_attn_q2i");
            EXPECT_EQ(q2i != nullptr, i % 2 == 0);
            if (q2i) {
                EXPECT_TRUE(sameArray(q2i->array(), ref.at(std::to_string(i) + "/grounding_attn_q2i")));
            }
            EXPECT_EQ(item.get("missing"), nullptr);
        }
    }
}

TEST_F(PickleTest, NestedContainersSharedObjectsIntsAndUnicode) {
    for (int protocol : {2, 3, 4, 5}) {
        SCOPED_TRACE("protocol " + std::to_string(protocol));
        const PickleValue v = unpickleFile(path("nested_p" + std::to_string(protocol) + ".pkl"));
        const auto& ints = v.get("ints")->list();
        const std::vector<std::int64_t> expected = {0,
                                                    1,
                                                    -1,
                                                    255,
                                                    256,
                                                    65535,
                                                    65536,
                                                    -2147483648LL,
                                                    2147483647LL,
                                                    2147483648LL,
                                                    4611686018427387904LL,
                                                    std::numeric_limits<std::int64_t>::max(),
                                                    std::numeric_limits<std::int64_t>::min()};
        ASSERT_EQ(ints.size(), expected.size());
        for (std::size_t i = 0; i < ints.size(); ++i) EXPECT_EQ(ints[i].toInt(), expected[i]) << i;
        EXPECT_EQ(v.get("floats")->list()[1].toDouble(), -1e300);
        EXPECT_EQ(v.get("unicode")->str(), "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80");
        EXPECT_EQ(v.get("bytes")->byteString(), (std::vector<std::uint8_t>{0, 1, 255}));
        const auto& tuple = v.get("tuple")->list();
        ASSERT_EQ(tuple.size(), 3u);
        EXPECT_EQ(v.get("tuple")->kind(), PickleValue::Kind::Tuple);
        EXPECT_EQ(tuple[1].list()[0].str(), "a");
        EXPECT_TRUE(tuple[1].list()[1].isNone());
        EXPECT_TRUE(tuple[2].list()[0].toBool());
        const PickleValue& c = *v.get("nested")->get("a")->get("b")->get("c");
        EXPECT_EQ(c.list().size(), 3u);
        const auto& twice = v.get("same_twice")->list();
        ASSERT_EQ(twice.size(), 2u);
        EXPECT_EQ(twice[0].get("shared")->list().size(), 3u);
        EXPECT_EQ(&twice[0].dict(), &twice[1].dict());  // one object, referenced twice
        EXPECT_EQ(v.get("set")->list()[0].toInt(), 7);
        EXPECT_EQ(v.get("bytearray")->byteString(), (std::vector<std::uint8_t>{'x', 'y', 'z'}));
        const auto& ordered = v.get("ordered")->dict();
        ASSERT_EQ(ordered.size(), 2u);
        EXPECT_EQ(ordered[0].first.str(), "z");
        EXPECT_EQ(ordered[1].second.toInt(), 2);
    }
}

TEST_F(PickleTest, OsSystemIsRefusedAndNeverRun) {
    std::error_code ec;
    fs::remove("/tmp/pwned_x", ec);
    try {
        unpickleFile(path("malicious.pkl"));
        FAIL() << "the malicious pickle was accepted";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path("malicious.pkl") + ": refused global 'posix.system' at byte"),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("only numpy arrays, built-in containers and PyTorch tensors are read"),
                  std::string::npos)
            << msg;
    }
    EXPECT_FALSE(fs::exists("/tmp/pwned_x"));
}

TEST_F(PickleTest, EveryTruncationFailsCleanly) {
    for (const char* name :
         {"arrays_p2.pkl", "arrays_p5.pkl", "labels_p4.pkl", "nested_p2.pkl", "nested_p5.pkl"}) {
        const auto bytes = readBytes(path(name));
        ASSERT_GT(bytes.size(), 10u);
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            std::vector<std::uint8_t> prefix(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
            UnpickleOptions o;
            o.source = name;
            const std::string msg = errorOf(prefix, o);
            ASSERT_FALSE(msg.empty()) << name << " cut at " << n << " was accepted";
            ASSERT_EQ(msg.rfind(std::string(name) + ": ", 0), 0u) << msg;
        }
        EXPECT_EQ(errorOf(bytes), "");
    }
}

TEST(Pickle, HugeDeclaredLengthsFailWithoutAllocating) {
    // BINUNICODE8 / BINBYTES8 / BYTEARRAY8 declaring 2^62 bytes, LONG4 2 GB, BINUNICODE 4 GB.
    const std::vector<std::vector<std::uint8_t>> inputs = {
        {0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x40, 'a', '.'},
        {0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40, 'a', '.'},
        {0x80, 5, 0x96, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '.'},
        {0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 1, '.'},
        {0x80, 3, 'X', 0xff, 0xff, 0xff, 0xff, 'a', '.'},
        {0x80, 4, 0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'N', '.'},
    };
    for (const auto& in : inputs) {
        const std::string msg = errorOf(in);
        EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    }
}

TEST(Pickle, HostileStructuresAreRefused) {
    auto run = [](std::vector<std::uint8_t> in, const std::string& expected) {
        const std::string msg = errorOf(in);
        EXPECT_NE(msg.find(expected), std::string::npos) << "'" << msg << "' lacks '" << expected << "'";
    };
    run({0x80, 2, '.'}, "stack underflow");
    run({0x80, 2, 'N', 't', '.'}, "MARK missing");
    run({0x80, 2, 'h', 3, '.'}, "memo index 3 was never stored");
    run({0x80, 2, 'N', 'a', '.'}, "stack underflow");
    run({0x80, 2, 'N', 'N', 'a', '.'}, "APPEND on a None");
    run({0x80, 2, 'i', 'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'},
        "unsupported pickle opcode INST");
    run({0x80, 2, 0x82, 1, '.'}, "unsupported pickle opcode EXT1");
    run({0x80, 5, 0x97, '.'}, "NEXT_BUFFER");
    run({0x80, 2, 0xff, '.'}, "unsupported pickle opcode 0xff at byte 2");
    run({0x80, 9, 'N', '.'}, "unsupported pickle protocol 9");
    run({'c', 'b', 'u', 'i', 'l', 't', 'i', 'n', 's', '\n', 'e', 'v', 'a', 'l', '\n', '.'},
        "refused global 'builtins.eval' at byte 0");
    run({0x80, 2, 'c', 'n', 't', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'},
        "refused global 'nt.system' at byte 2");
    // A persistent id outside a zip checkpoint.
    run({0x80, 2, 'N', 'Q', '.'}, "BINPERSID");
    // 2^64 as LONG1 (9 bytes).
    run({0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, '.'}, "does not fit in 64 bits");
    // A list holding itself.
    run({0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'}, "holds itself");
    // Nesting deeper than the limit: ((((...)))) with TUPLE1, and nested lists through APPEND.
    std::vector<std::uint8_t> deep = {0x80, 2, 'N'};
    for (int i = 0; i < 100000; ++i) deep.push_back(0x85);
    deep.push_back('.');
    run(deep, "nesting deeper than 256 levels");
    std::vector<std::uint8_t> lists = {0x80, 2};
    for (int i = 0; i < 50000; ++i) lists.push_back(']');
    for (int i = 0; i < 49999; ++i) lists.push_back('a');
    lists.push_back('.');
    run(lists, "nesting deeper than 256 levels");
}

TEST(Pickle, LimitsOnMemoAndBytes) {
    UnpickleOptions o;
    o.maxMemo = 2;
    EXPECT_NE(errorOf({0x80, 4, 'N', 0x94, 0x94, 0x94, '.'}, o).find("more than 2 memo entries"),
              std::string::npos);
    UnpickleOptions small;
    small.maxTotalBytes = 4;
    EXPECT_NE(
        errorOf({0x80, 4, 0x8c, 5, 'h', 'e', 'l', 'l', 'o', '.'}, small).find("exceed the limit of 4 bytes"),
        std::string::npos);
    // A string copied through the memo counts each time.
    std::vector<std::uint8_t> copies = {0x80, 4, 0x8c, 4, 'a', 'b', 'c', 'd', 0x94};
    for (int i = 0; i < 10; ++i) copies.insert(copies.end(), {'h', 0});
    copies.push_back('.');
    UnpickleOptions twenty;
    twenty.maxTotalBytes = 20;
    EXPECT_NE(errorOf(copies, twenty).find("exceed the limit"), std::string::npos);
}

TEST(Pickle, AccessorsNameTheKind) {
    const std::vector<std::uint8_t> in = {0x80, 2, 'K', 5, '.'};
    const PickleValue v = unpickle(in.data(), in.size(), {});
    EXPECT_EQ(v.toInt(), 5);
    try {
        (void)v.list();
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "expected a list, found an int");
    }
}

TEST_F(PickleTest, RandomMutationsNeverCrash) {
    std::mt19937 rng(1234);
    for (const char* name :
         {"arrays_p2.pkl", "arrays_p4.pkl", "labels_p5.pkl", "nested_p3.pkl", "nested_p5.pkl"}) {
        const auto bytes = readBytes(path(name));
        for (int round = 0; round < 600; ++round) {
            auto copy = bytes;
            const int edits = 1 + int(rng() % 4);
            for (int e = 0; e < edits; ++e) {
                const std::size_t at = rng() % copy.size();
                switch (rng() % 3) {
                    case 0:
                        copy[at] = std::uint8_t(rng());
                        break;
                    case 1:
                        copy.erase(copy.begin() + std::ptrdiff_t(at));
                        break;
                    default:
                        copy.insert(copy.begin() + std::ptrdiff_t(at), std::uint8_t(rng()));
                }
            }
            try {
                const PickleValue v = unpickle(copy.data(), copy.size(), {});
                (void)v.kindName();
            } catch (const Error&) {
            }
        }
    }
}
