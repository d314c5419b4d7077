// safetensors reader and writer: round trips, sharded archives, folder layouts, and every kind of bad file
// the reader must refuse with a message naming the file and the tensor at fault.
#include "core/io/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/result.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn::io;

namespace {

// A file made of an 8-byte length, `header` as given, then `data`.
std::string writeRaw(const std::string& path, const std::string& header,
                     const std::vector<std::uint8_t>& data, std::uint64_t declaredLength = ~0ull) {
    std::uint64_t n = declaredLength == ~0ull ? header.size() : declaredLength;
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    return path;
}

std::string openError(const std::string& path) {
    try {
        SafetensorsFile::open(path);
    } catch (const sdrpn::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception type: ") + e.what();
    }
    return "no error";
}

std::string archiveError(const std::string& path) {
    try {
        SafetensorsArchive::open(path);
    } catch (const sdrpn::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception type: ") + e.what();
    }
    return "no error";
}

std::vector<std::uint8_t> bytes(std::size_t n, std::uint8_t start = 0) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(start + i);
    return v;
}

void writeText(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// A small valid file holding the given float tensors.
void writeFloats(const std::string& path,
                 const std::vector<std::pair<std::string, std::vector<float>>>& tensors) {
    std::vector<TensorRecord> records;
    for (const auto& [name, values] : tensors)
        records.push_back({name, DType::F32, {static_cast<std::int64_t>(values.size())}, values.data()});
    writeSafetensors(path, records);
}

}  // namespace

TEST(SafetensorsDType, NamesSizesAndParsing) {
    for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                    DType::I8, DType::U8, DType::BOOL}) {
        auto parsed = parseDType(dtypeName(d));
        ASSERT_TRUE(parsed.has_value()) << dtypeName(d);
        EXPECT_EQ(*parsed, d);
    }
    EXPECT_EQ(dtypeSize(DType::F64), 8u);
    EXPECT_EQ(dtypeSize(DType::BF16), 2u);
    EXPECT_EQ(dtypeSize(DType::BOOL), 1u);
    EXPECT_FALSE(parseDType("F8_E4M3").has_value());
    EXPECT_FALSE(parseDType("f32").has_value());
}

TEST(SafetensorsWriter, RoundTripKeepsBytesShapesAndMetadata) {
    const std::string path = sdrpn::test::scratchDir() + "/rt.safetensors";
    std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
    std::vector<std::uint16_t> f16 = {0x3c00, 0xc000, 0x7bff};
    std::vector<std::uint16_t> bf16 = {0x3f80, 0x4000};
    std::vector<std::int64_t> i64 = {-1, 1LL << 40};
    std::vector<std::int32_t> i32 = {-7, 9, 11};
    std::vector<std::uint8_t> u8 = {0, 255, 17};
    std::vector<std::uint8_t> boolean = {1, 0, 1, 1};
    double scalar = 3.5;
    writeSafetensors(path,
                     {{"u8", DType::U8, {3}, u8.data()},
                      {"f32", DType::F32, {2, 3}, f32.data()},
                      {"f16", DType::F16, {3}, f16.data()},
                      {"bf16", DType::BF16, {1, 2}, bf16.data()},
                      {"i64", DType::I64, {2}, i64.data()},
                      {"i32", DType::I32, {3}, i32.data()},
                      {"flags", DType::BOOL, {2, 2}, boolean.data()},
                      {"scalar", DType::F64, {}, &scalar},
                      {"empty", DType::F32, {0, 4}, nullptr}},
                     {{"format", "pt"}});
    auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->metadata().at("format"), "pt");
    ASSERT_EQ(file->tensors().size(), 9u);
    auto check = [&](const std::string& name, DType dtype, std::vector<std::int64_t> shape, const void* data,
                     std::size_t n) {
        SCOPED_TRACE(name);
        const TensorInfo* info = file->find(name);
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->dtype, dtype);
        EXPECT_EQ(info->shape, shape);
        ASSERT_EQ(info->nbytes(), n);
        RawTensor raw = file->raw(name);
        if (n) {
            EXPECT_EQ(std::memcmp(raw.data, data, n), 0);
        }
    };
    check("f32", DType::F32, {2, 3}, f32.data(), 24);
    check("f16", DType::F16, {3}, f16.data(), 6);
    check("bf16", DType::BF16, {1, 2}, bf16.data(), 4);
    check("i64", DType::I64, {2}, i64.data(), 16);
    check("i32", DType::I32, {3}, i32.data(), 12);
    check("u8", DType::U8, {3}, u8.data(), 3);
    check("flags", DType::BOOL, {2, 2}, boolean.data(), 4);
    check("scalar", DType::F64, {}, &scalar, 8);
    check("empty", DType::F32, {0, 4}, nullptr, 0);
    EXPECT_EQ(file->find("scalar")->numel(), 1);
    EXPECT_EQ(file->find("empty")->numel(), 0);
}

TEST(SafetensorsWriter, LayoutIsAlignedAndHeaderPadded) {
    const std::string path = sdrpn::test::scratchDir() + "/aligned.safetensors";
    std::vector<std::uint8_t> u8 = {1, 2, 3};
    std::vector<std::uint16_t> f16 = {1};
    std::vector<std::int64_t> i64 = {5};
    std::vector<float> f32 = {1, 2, 3};
    writeSafetensors(path, {{"a_u8", DType::U8, {3}, u8.data()},
                            {"b_f16", DType::F16, {1}, f16.data()},
                            {"c_i64", DType::I64, {1}, i64.data()},
                            {"d_f32", DType::F32, {3}, f32.data()}});
    std::ifstream in(path, std::ios::binary);
    std::uint8_t len[8];
    in.read(reinterpret_cast<char*>(len), 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    EXPECT_EQ(n % 8, 0u);
    auto file = SafetensorsFile::open(path);
    // Descending alignment, then name: i64, f32, f16, u8 — each begins at a multiple of its element size.
    ASSERT_EQ(file->tensors().size(), 4u);
    EXPECT_EQ(file->tensors()[0].name, "c_i64");
    EXPECT_EQ(file->tensors()[1].name, "d_f32");
    EXPECT_EQ(file->tensors()[2].name, "b_f16");
    EXPECT_EQ(file->tensors()[3].name, "a_u8");
    for (const TensorInfo& t : file->tensors())
        EXPECT_EQ((8 + n + t.begin) % dtypeSize(t.dtype), 0u) << t.name;
    // No temporary files left behind.
    int count = 0;
    for (const auto& e : fs::directory_iterator(fs::path(path).parent_path())) count += e.is_regular_file();
    EXPECT_EQ(count, 1);
}

TEST(SafetensorsWriter, RefusesBadRecordsAndUnwritablePaths) {
    const std::string dir = sdrpn::test::scratchDir();
    std::vector<float> v = {1};
    auto errorOf = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const sdrpn::Error& e) {
            return e.what();
        }
        return "no error";
    };
    std::string msg = errorOf([&] {
        writeSafetensors(dir + "/dup.safetensors",
                         {{"x", DType::F32, {1}, v.data()}, {"x", DType::F32, {1}, v.data()}});
    });
    EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dup.safetensors"), std::string::npos) << msg;
    msg = errorOf([&] { writeSafetensors(dir + "/null.safetensors", {{"w", DType::F32, {1}, nullptr}}); });
    EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
    msg = errorOf([&] { writeSafetensors(dir + "/empty.safetensors", {{"", DType::F32, {1}, v.data()}}); });
    EXPECT_NE(msg.find("empty name"), std::string::npos) << msg;
    msg = errorOf([&] {
        writeSafetensors(dir + "/no/such/folder/x.safetensors", {{"w", DType::F32, {1}, v.data()}});
    });
    EXPECT_NE(msg.find("no/such/folder/x.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
    // A read-only folder (root ignores permissions, so only checked for ordinary users).
    const std::string readOnly = dir + "/readonly";
    fs::create_directories(readOnly);
    fs::permissions(readOnly, fs::perms::owner_read | fs::perms::owner_exec);
    if (::geteuid() != 0) {
        msg = errorOf([&] {
            writeSafetensors(readOnly + "/x.safetensors", {{"w", DType::F32, {1}, v.data()}});
        });
        EXPECT_NE(msg.find(readOnly + "/x.safetensors"), std::string::npos) << msg;
        EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
    }
    fs::permissions(readOnly, fs::perms::owner_all);
}

TEST(SafetensorsWriter, ReplacesAnExistingFileAtomically) {
    const std::string path = sdrpn::test::scratchDir() + "/w.safetensors";
    writeFloats(path, {{"a", {1, 2}}});
    writeFloats(path, {{"b", {3}}});
    auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->find("a"), nullptr);
    ASSERT_NE(file->find("b"), nullptr);
}

TEST(SafetensorsReader, AcceptsSpacePaddedHeaderAndUnalignedForeignLayout) {
    const std::string path = sdrpn::test::scratchDir() + "/foreign.safetensors";
    // One byte first, then a float at offset 1: legal, just unaligned.
    std::string header = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
    header.append(5, ' ');
    float value = 2.5f;
    std::vector<std::uint8_t> data = {9};
    data.resize(5);
    std::memcpy(data.data() + 1, &value, 4);
    writeRaw(path, header, data);
    auto file = SafetensorsFile::open(path);
    ASSERT_EQ(file->tensors().size(), 2u);
    EXPECT_EQ(file->tensors()[0].name, "b");  // data-offset order
    float read = 0;
    std::memcpy(&read, file->raw("a").data, 4);
    EXPECT_EQ(read, 2.5f);
    EXPECT_TRUE(file->metadata().empty());
}

TEST(SafetensorsReader, RawKeepsTheMappingAlive) {
    const std::string path = sdrpn::test::scratchDir() + "/alive.safetensors";
    writeFloats(path, {{"w", {4, 5, 6}}});
    RawTensor raw;
    {
        auto archive = SafetensorsArchive::open(path);
        raw = archive->raw("w");
    }
    float v[3];
    std::memcpy(v, raw.data, sizeof v);
    EXPECT_EQ(v[2], 6.0f);
}

TEST(SafetensorsReader, MissingTensorNamesTensorAndFile) {
    const std::string path = sdrpn::test::scratchDir() + "/m.safetensors";
    writeFloats(path, {{"w", {1}}});
    auto archive = SafetensorsArchive::open(path);
    EXPECT_TRUE(archive->contains("w"));
    EXPECT_FALSE(archive->contains("nope"));
    try {
        archive->info("nope");
        FAIL() << "expected an error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos) << e.what();
    }
    EXPECT_THROW(archive->raw("nope"), sdrpn::Error);
}

// ---- bad files: each must be refused with a message naming the file (and the tensor where there is one)

struct BadFileCase {
    const char* label;
    std::string header;
    std::vector<std::uint8_t> data;
    std::uint64_t declaredLength;
    std::vector<std::string> mustMention;
};

class SafetensorsBadFile : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(SafetensorsBadFile, IsRefusedWithAClearMessage) {
    const BadFileCase& c = GetParam();
    const std::string path = sdrpn::test::scratchDir() + "/" + c.label + ".safetensors";
    writeRaw(path, c.header, c.data, c.declaredLength);
    const std::string msg = openError(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const std::string& word : c.mustMention) EXPECT_NE(msg.find(word), std::string::npos) << msg;
    // The archive front door gives the same refusal.
    EXPECT_NE(archiveError(path).find(path), std::string::npos);
}

const std::string kF32x2 = R"("dtype":"F32","shape":[2],)";

INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsBadFile,
    ::testing::Values(
        BadFileCase{"header_past_end",
                    R"({"w":{)" + kF32x2 + R"("data_offsets":[0,8]}})",
                    bytes(8),
                    100000,
                    {"truncated", "100000"}},
        BadFileCase{"header_too_large", "{}", {}, 200'000'000, {"200000000"}},
        BadFileCase{
            "overlap",
            R"({"a":{)" + kF32x2 + R"("data_offsets":[0,8]},"b":{)" + kF32x2 + R"("data_offsets":[4,12]}})",
            bytes(12),
            ~0ull,
            {"overlap", "'a'", "'b'"}},
        BadFileCase{"out_of_range",
                    R"({"w":{)" + kF32x2 + R"("data_offsets":[8,16]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "past the end"}},
        BadFileCase{"begin_after_end",
                    R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "begin > end"}},
        BadFileCase{"unknown_dtype",
                    R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})",
                    bytes(2),
                    ~0ull,
                    {"unsupported dtype 'F8_E4M3' for tensor 'w'"}},
        BadFileCase{"not_json", "{this is not json", bytes(4), ~0ull, {"not valid JSON"}},
        BadFileCase{"not_object", "[1, 2, 3]", {}, ~0ull, {"not a JSON object"}},
        BadFileCase{"shape_mismatch",
                    R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "12 bytes", "span 8"}},
        BadFileCase{"negative_shape",
                    R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "non-negative"}},
        BadFileCase{"float_shape",
                    R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "non-negative integers"}},
        BadFileCase{"huge_shape",
                    R"({"w":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "too large"}},
        BadFileCase{"missing_offsets",
                    R"({"w":{"dtype":"F32","shape":[2]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "data_offsets"}},
        BadFileCase{"missing_dtype",
                    R"({"w":{"shape":[2],"data_offsets":[0,8]}})",
                    bytes(8),
                    ~0ull,
                    {"'w'", "dtype"}},
        BadFileCase{"entry_not_object", R"({"w":[1,2]})", {}, ~0ull, {"'w'"}},
        BadFileCase{
            "duplicate_name",
            R"({"w":{)" + kF32x2 + R"("data_offsets":[0,8]},"w":{)" + kF32x2 + R"("data_offsets":[8,16]}})",
            bytes(16),
            ~0ull,
            {"'w'", "twice"}},
        BadFileCase{
            "bad_metadata", R"({"__metadata__":{"format":1}})", {}, ~0ull, {"__metadata__", "'format'"}},
        BadFileCase{"bad_utf8", "{\"w\xff\":{}}", {}, ~0ull, {"not valid JSON"}}),
    [](const ::testing::TestParamInfo<BadFileCase>& info) { return std::string(info.param.label); });

TEST(SafetensorsReader, TruncatedFiles) {
    const std::string dir = sdrpn::test::scratchDir();
    writeText(dir + "/empty.safetensors", "");
    std::string msg = openError(dir + "/empty.safetensors");
    EXPECT_NE(msg.find("empty.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

    writeText(dir + "/short.safetensors", "\x10\x00\x00");
    msg = openError(dir + "/short.safetensors");
    EXPECT_NE(msg.find("short.safetensors"), std::string::npos) << msg;

    // A valid file cut in the middle of its data: the last tensor now points past the end.
    const std::string full = dir + "/full.safetensors";
    writeFloats(full, {{"a", {1, 2, 3}}, {"b", {4, 5, 6}}});
    const auto size = fs::file_size(full);
    fs::resize_file(full, size - 4);
    msg = openError(full);
    EXPECT_NE(msg.find("full.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;

    // Cut inside the header.
    writeFloats(full, {{"a", {1, 2, 3}}});
    fs::resize_file(full, 20);
    msg = openError(full);
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(SafetensorsReader, MissingFileAndFolderAreErrors) {
    const std::string dir = sdrpn::test::scratchDir();
    std::string msg = openError(dir + "/nope.safetensors");
    EXPECT_NE(msg.find("nope.safetensors"), std::string::npos) << msg;
    msg = archiveError(dir + "/nope");
    EXPECT_NE(msg.find(dir + "/nope"), std::string::npos) << msg;
    msg = openError(dir);  // a folder is not a file
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

// ---- archives

namespace {
void writeIndex(const std::string& path, const std::string& weightMap) {
    writeText(path, R"({"metadata":{"total_size":20},"weight_map":)" + weightMap + "}");
}
}  // namespace

TEST(SafetensorsArchive, TwoShardsThroughIndexFolderAndIndexFile) {
    const std::string dir = sdrpn::test::scratchDir();
    writeFloats(dir + "/model-00001-of-00002.safetensors", {{"a", {1, 2}}, {"b", {3}}});
    writeFloats(dir + "/model-00002-of-00002.safetensors", {{"c", {4, 5}}});
    writeIndex(dir + "/model.safetensors.index.json",
               R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
               R"("c":"model-00002-of-00002.safetensors"})");
    for (const std::string& source : {dir, dir + "/model.safetensors.index.json"}) {
        SCOPED_TRACE(source);
        auto archive = SafetensorsArchive::open(source);
        EXPECT_EQ(archive->source(), source);
        EXPECT_EQ(archive->files().size(), 2u);
        EXPECT_EQ(archive->names(), (std::vector<std::string>{"a", "b", "c"}));
        EXPECT_EQ(archive->info("c").shape, (std::vector<std::int64_t>{2}));
        float v[2];
        std::memcpy(v, archive->raw("c").data, sizeof v);
        EXPECT_EQ(v[1], 5.0f);
        EXPECT_NE(archive->raw("c").file->path().find("00002"), std::string::npos);
    }
}

TEST(SafetensorsArchive, MissingShardNamesShardAndIndex) {
    const std::string dir = sdrpn::test::scratchDir();
    writeFloats(dir + "/s1.safetensors", {{"a", {1}}});
    writeIndex(dir + "/model.safetensors.index.json", R"({"a":"s1.safetensors","b":"s2.safetensors"})");
    const std::string msg = archiveError(dir);
    EXPECT_NE(msg.find("s2.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST(SafetensorsArchive, IndexPointingAtTheWrongShardIsAnError) {
    const std::string dir = sdrpn::test::scratchDir();
    writeFloats(dir + "/s1.safetensors", {{"a", {1}}});
    writeFloats(dir + "/s2.safetensors", {{"b", {1}}});
    writeIndex(dir + "/model.safetensors.index.json", R"({"a":"s2.safetensors","b":"s2.safetensors"})");
    const std::string msg = archiveError(dir);
    EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("s2.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("does not hold it"), std::string::npos) << msg;
}

TEST(SafetensorsArchive, BadIndexFiles) {
    const std::string dir = sdrpn::test::scratchDir();
    writeText(dir + "/a.index.json", "{not json");
    std::string msg = archiveError(dir + "/a.index.json");
    EXPECT_NE(msg.find("a.index.json"), std::string::npos) << msg;
    writeText(dir + "/b.index.json", R"({"metadata":{}})");
    msg = archiveError(dir + "/b.index.json");
    EXPECT_NE(msg.find("weight_map"), std::string::npos) << msg;
    writeText(dir + "/c.index.json", R"({"weight_map":{"a":5}})");
    msg = archiveError(dir + "/c.index.json");
    EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
}

TEST(SafetensorsArchive, DuplicateTensorAcrossShardsIsAnError) {
    const std::string dir = sdrpn::test::scratchDir();
    writeFloats(dir + "/x.safetensors", {{"shared", {1}}});
    writeFloats(dir + "/y.safetensors", {{"shared", {2}}});
    const std::string msg = archiveError(dir);  // no index: all *.safetensors files
    EXPECT_NE(msg.find("'shared'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("x.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("y.safetensors"), std::string::npos) << msg;
}

TEST(SafetensorsArchive, FolderLookupOrder) {
    // model.safetensors wins over everything else.
    std::string dir = sdrpn::test::scratchDir("single");
    writeFloats(dir + "/model.safetensors", {{"m", {1}}});
    writeFloats(dir + "/other.safetensors", {{"o", {1}}});
    EXPECT_EQ(SafetensorsArchive::open(dir)->names(), std::vector<std::string>{"m"});

    // Exactly one other index.
    dir = sdrpn::test::scratchDir("oneindex");
    writeFloats(dir + "/part.safetensors", {{"p", {1}}});
    writeFloats(dir + "/stray.safetensors", {{"s", {1}}});
    writeIndex(dir + "/custom.safetensors.index.json", R"({"p":"part.safetensors"})");
    EXPECT_EQ(SafetensorsArchive::open(dir)->names(), std::vector<std::string>{"p"});

    // Several indexes: ambiguous.
    writeIndex(dir + "/second.safetensors.index.json", R"({"s":"stray.safetensors"})");
    std::string msg = archiveError(dir);
    EXPECT_NE(msg.find("several index files"), std::string::npos) << msg;

    // No index: every *.safetensors file.
    dir = sdrpn::test::scratchDir("loose");
    writeFloats(dir + "/a.safetensors", {{"x", {1}}});
    writeFloats(dir + "/b.safetensors", {{"y", {1}}});
    EXPECT_EQ(SafetensorsArchive::open(dir)->names(), (std::vector<std::string>{"x", "y"}));

    // Only PyTorch .bin files: read through their index (tests/unit/test_torch_bin.cpp has working ones).
    dir = sdrpn::test::scratchDir("bin");
    writeText(dir + "/pytorch_model-00001-of-00002.bin", "PK");
    writeText(dir + "/pytorch_model.bin.index.json", R"({"weight_map":{}})");
    msg = archiveError(dir);
    EXPECT_NE(msg.find("pytorch_model.bin.index.json has an empty 'weight_map'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;

    // Nothing at all.
    dir = sdrpn::test::scratchDir("nothing");
    msg = archiveError(dir);
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST(SafetensorsArchive, OpensTheTinyLlavaFixture) {
    const std::string dir = sdrpn::test::fixturePath("tiny-llava-hf");
    auto archive = SafetensorsArchive::open(dir);
    ASSERT_FALSE(archive->names().empty());
    for (const std::string& name : archive->names()) {
        const TensorInfo& info = archive->info(name);
        EXPECT_EQ(std::uint64_t(info.numel()) * dtypeSize(info.dtype), info.nbytes()) << name;
    }
}

TEST(SafetensorsReader, RandomlyDamagedFilesNeverCrash) {
    // Flip bytes in the length and header of a valid file: every outcome is either a valid archive or an
    // sdrpn::Error, never a crash or another exception type.
    const std::string dir = sdrpn::test::scratchDir();
    const std::string good = dir + "/good.safetensors";
    std::vector<float> a = {1, 2, 3, 4}, b = {5, 6};
    std::vector<std::uint8_t> c = {1, 0, 1};
    writeSafetensors(good,
                     {{"a", DType::F32, {2, 2}, a.data()},
                      {"b", DType::F32, {2}, b.data()},
                      {"c", DType::BOOL, {3}, c.data()}},
                     {{"format", "pt"}});
    std::ifstream in(good, std::ios::binary);
    const std::vector<char> original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::uint64_t state = 12345;
    auto next = [&] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>(state >> 33);
    };
    const std::string damaged = dir + "/damaged.safetensors";
    int accepted = 0;
    for (int round = 0; round < 150; ++round) {
        std::vector<char> bytes = original;
        const int flips = 1 + static_cast<int>(next() % 3);
        for (int f = 0; f < flips; ++f) {
            const std::size_t at = next() % std::min<std::size_t>(bytes.size(), 160);
            bytes[at] = static_cast<char>(next() & 0xff);
        }
        if (next() % 8 == 0) bytes.resize(next() % bytes.size());
        std::ofstream(damaged, std::ios::binary)
            .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        try {
            auto archive = SafetensorsArchive::open(damaged);
            for (const std::string& name : archive->names()) {
                RawTensor raw = archive->raw(name);
                volatile std::uint8_t sink = 0;
                for (std::uint64_t i = 0; i < raw.info->nbytes(); ++i) sink = sink + raw.data[i];
                (void)sink;
            }
            ++accepted;
        } catch (const sdrpn::Error& e) {
            EXPECT_NE(std::string(e.what()).find(damaged), std::string::npos) << e.what();
        }
    }
    EXPECT_LT(accepted, 150);
}
