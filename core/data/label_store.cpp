#include "core/data/label_store.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "core/result.h"

namespace fs = std::filesystem;

namespace sdrpn::data {

// ---------------------------------------------------------------------------------------------------------
// fp16

std::uint16_t floatToHalf(float value) {
    std::uint32_t x = 0;
    std::memcpy(&x, &value, sizeof x);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t bits = x & 0x7fffffffu;
    if (bits >= 0x7f800000u)  // infinity or NaN (NaN keeps a quiet bit so it stays NaN)
        return std::uint16_t(sign | 0x7c00u | (bits > 0x7f800000u ? 0x200u | ((bits >> 13) & 0x3ffu) : 0u));
    if (bits >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to >= 65520: infinity
    if (bits < 0x38800000u) {                                       // below 2^-14: subnormal or zero
        float magnitude = 0.0f;
        std::memcpy(&magnitude, &bits, sizeof bits);
        // Exact scaling by 2^24, then round half to even (the default rounding mode).
        return std::uint16_t(sign | std::uint32_t(std::nearbyint(magnitude * 16777216.0f)));
    }
    const std::uint32_t odd = (bits >> 13) & 1u;
    bits += 0xc8000fffu + odd;  // exponent bias 127 → 15, and round half to even on the 13 dropped bits
    return std::uint16_t(sign | (bits >> 13));
}

float halfToFloat(std::uint16_t half) {
    const std::uint32_t sign = std::uint32_t(half & 0x8000u) << 16;
    const std::uint32_t exponent = (half >> 10) & 0x1fu;
    const std::uint32_t mantissa = half & 0x3ffu;
    if (exponent == 0) {
        const float magnitude = std::ldexp(float(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    const std::uint32_t bits = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)
                                              : sign | ((exponent + 112u) << 23) | (mantissa << 13);
    float out = 0.0f;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

namespace {

// What a store read from disk may hold (checked on reading as on writing; a store file may come from
// anywhere): counts and grid sides, geometry numbers, and the values of one layer's maps (heads × cells).
constexpr std::int64_t kMaxStoredCount = 1 << 16;
constexpr std::int64_t kMaxGridSide = 4096;
constexpr std::int64_t kMaxGeometryValue = 1 << 20;
constexpr std::int64_t kMaxLayerMapValues = std::int64_t(1) << 26;

std::vector<std::uint8_t> encodeHalf(const std::vector<float>& values) {
    std::vector<std::uint8_t> out(values.size() * 2);
    for (std::size_t i = 0; i < values.size(); ++i) {
        const std::uint16_t h = floatToHalf(values[i]);
        out[2 * i] = std::uint8_t(h & 0xffu);  // little-endian on every host
        out[2 * i + 1] = std::uint8_t(h >> 8);
    }
    return out;
}

std::vector<float> decodeHalf(const void* blob, int bytes) {
    const auto* p = static_cast<const std::uint8_t*>(blob);
    std::vector<float> out(std::size_t(bytes) / 2);
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = halfToFloat(std::uint16_t(p[2 * i] | (std::uint16_t(p[2 * i + 1]) << 8)));
    return out;
}

// What an SQLite result code means for a person looking at a store file.
std::string explain(int rc, const char* sqliteMessage) {
    switch (rc & 0xff) {
        case SQLITE_NOTADB:
            return "not an SQLite database (is it a label store?)";
        case SQLITE_CORRUPT:
            return "the database is corrupt (" + std::string(sqliteMessage) + ")";
        case SQLITE_READONLY:
            return "read-only: cannot write (" + std::string(sqliteMessage) + ")";
        case SQLITE_FULL:
            return "disk full: cannot write (" + std::string(sqliteMessage) + ")";
        case SQLITE_CANTOPEN:
            return "cannot open (missing folder, a folder of that name, or no permission)";
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return "locked by another writer for longer than the busy timeout";
        case SQLITE_PERM:
        case SQLITE_AUTH:
            return "permission denied (" + std::string(sqliteMessage) + ")";
        case SQLITE_IOERR:
            return "I/O error (" + std::string(sqliteMessage) + ")";
        default:
            return sqliteMessage;
    }
}

// A prepared statement; finalised when it goes out of scope.
class Statement {
public:
    Statement(sqlite3* db, const char* sql, const std::function<void(int, const std::string&)>& fail,
              const char* what = "preparing a query")
        : m_db(db), m_fail(fail) {
        const int rc = sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr);
        if (rc != SQLITE_OK) m_fail(rc, what);
    }
    ~Statement() { sqlite3_finalize(m_stmt); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, const std::string& s) {
        check(sqlite3_bind_text(m_stmt, i, s.data(), int(s.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int i, const std::optional<std::string>& s) {
        if (s) return bind(i, *s);
        check(sqlite3_bind_null(m_stmt, i));
        return *this;
    }
    Statement& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(m_stmt, i, v));
        return *this;
    }
    Statement& bind(int i, int v) { return bind(i, std::int64_t(v)); }
    Statement& bind(int i, double v) {
        check(sqlite3_bind_double(m_stmt, i, v));
        return *this;
    }
    Statement& bindBlob(int i, const std::vector<std::uint8_t>& b) {
        check(sqlite3_bind_blob(m_stmt, i, b.data(), int(b.size()), SQLITE_TRANSIENT));
        return *this;
    }

    // True while there is a row.
    bool step(const std::string& what) {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        m_fail(rc, what);
        return false;
    }
    void reset() {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }

    std::int64_t integer(int col) const { return sqlite3_column_int64(m_stmt, col); }
    double real(int col) const { return sqlite3_column_double(m_stmt, col); }
    bool isNull(int col) const { return sqlite3_column_type(m_stmt, col) == SQLITE_NULL; }
    std::string text(int col) const {
        const auto* p = sqlite3_column_text(m_stmt, col);
        return p ? std::string(reinterpret_cast<const char*>(p),
                               std::size_t(sqlite3_column_bytes(m_stmt, col)))
                 : std::string();
    }
    std::optional<std::string> optionalText(int col) const {
        if (isNull(col)) return std::nullopt;
        return text(col);
    }
    std::vector<float> halfBlob(int col) const {
        const void* p = sqlite3_column_blob(m_stmt, col);
        return decodeHalf(p, sqlite3_column_bytes(m_stmt, col));
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) m_fail(rc, "binding a query parameter");
    }
    sqlite3* m_db;
    sqlite3_stmt* m_stmt = nullptr;
    const std::function<void(int, const std::string&)>& m_fail;
};

constexpr const char* kSampleColumns =
    "id, dataset, key, image, question, reference, model, answer, answer_tokens, settings, grid_rows, "
    "grid_cols, geometry, model_layers, model_heads, seconds, created";

// GridGeometry as JSON, every field, so the studio draws stored maps exactly where the preprocessor put
// them (architecture.md: geometry is computed once and carried with every map).
std::string geometryToJson(const models::GridGeometry& g) {
    nlohmann::json j;
    j["fit"] = models::imageFitName(g.fit);
    j["source"] = {g.sourceWidth, g.sourceHeight};
    j["processed"] = {g.processedWidth, g.processedHeight};
    j["grid"] = {g.gridRows, g.gridCols};
    j["scale"] = {g.scaleX, g.scaleY};
    j["offset"] = {g.offsetX, g.offsetY};
    j["resized"] = {g.resizedWidth, g.resizedHeight};
    j["pad"] = {g.padLeft, g.padTop};
    j["crop"] = {g.cropLeft, g.cropTop};
    return j.dump();
}

models::GridGeometry geometryFromJson(const std::string& text) {
    models::GridGeometry g;
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) throw Error("stored geometry is not a JSON object: " + text.substr(0, 200));
    // Each number is checked before it is converted: a store file may come from anywhere.
    const auto pair = [&](const char* key) -> const nlohmann::json& {
        const nlohmann::json& v = j.at(key);
        if (!v.is_array() || v.size() != 2)
            throw Error("stored geometry: '" + std::string(key) + "' must be a pair of numbers");
        return v;
    };
    const auto integers = [&](const char* key, int& a, int& b) {
        const nlohmann::json& v = pair(key);
        for (int i = 0; i < 2; ++i) {
            if (!v[i].is_number_integer() || v[i].get<std::int64_t>() < -kMaxGeometryValue ||
                v[i].get<std::int64_t>() > kMaxGeometryValue)
                throw Error("stored geometry: '" + std::string(key) + "' must be integers within ±" +
                            std::to_string(kMaxGeometryValue) + ", got " + v.dump());
        }
        a = int(v[0].get<std::int64_t>());
        b = int(v[1].get<std::int64_t>());
    };
    const auto numbers = [&](const char* key, double& a, double& b) {
        const nlohmann::json& v = pair(key);
        for (int i = 0; i < 2; ++i)
            if (!v[i].is_number() || !std::isfinite(v[i].get<double>()))
                throw Error("stored geometry: '" + std::string(key) + "' must be finite numbers, got " +
                            v.dump());
        a = v[0].get<double>();
        b = v[1].get<double>();
    };
    try {
        const nlohmann::json& fit = j.at("fit");
        if (!fit.is_string()) throw Error("stored geometry: 'fit' must be a string");
        if (auto parsed = models::parseImageFit(fit.get<std::string>())) g.fit = *parsed;
        integers("source", g.sourceWidth, g.sourceHeight);
        integers("processed", g.processedWidth, g.processedHeight);
        integers("grid", g.gridRows, g.gridCols);
        numbers("scale", g.scaleX, g.scaleY);
        numbers("offset", g.offsetX, g.offsetY);
        integers("resized", g.resizedWidth, g.resizedHeight);
        integers("pad", g.padLeft, g.padTop);
        integers("crop", g.cropLeft, g.cropTop);
    } catch (const nlohmann::json::exception& e) {
        throw Error("stored geometry " + text.substr(0, 200) + ": " + e.what());
    }
    return g;
}

StoredSample sampleFromRow(const Statement& s) {
    StoredSample out;
    out.dataset = s.text(1);
    out.key = s.text(2);
    out.image = s.text(3);
    out.question = s.text(4);
    out.reference = s.optionalText(5);
    out.model = s.text(6);
    out.answer = s.text(7);
    const auto count = [&](int column, const char* what) {
        const std::int64_t n = s.integer(column);
        if (n < 0 || n > kMaxStoredCount)
            throw Error("sample " + out.dataset + "/" + out.key + ": " + what + " " + std::to_string(n) +
                        " is out of range (0 to " + std::to_string(kMaxStoredCount) + ")");
        return int(n);
    };
    out.answerTokens = count(8, "answer token count");
    out.settings = s.text(9);
    out.gridRows = count(10, "grid rows");
    out.gridCols = count(11, "grid columns");
    try {
        out.geometry = geometryFromJson(s.text(12));
    } catch (const Error& e) {
        throw Error("sample " + out.dataset + "/" + out.key + ": " + e.what());
    }
    out.modelLayers = count(13, "layer count");
    out.modelHeads = count(14, "head count");
    out.seconds = s.real(15);
    out.created = s.text(16);
    return out;
}

// What differs between two samples with the same key, for merge reports ("" when identical).
std::string differences(const StoredSample& a, const StoredSample& b) {
    std::vector<std::string> d;
    if (a.model != b.model) d.push_back("model");
    if (a.image != b.image) d.push_back("image");
    if (a.question != b.question) d.push_back("question");
    if (a.reference != b.reference) d.push_back("reference");
    if (a.answer != b.answer || a.answerTokens != b.answerTokens) d.push_back("answer");
    if (a.settings != b.settings) d.push_back("settings");
    if (a.gridRows != b.gridRows || a.gridCols != b.gridCols ||
        geometryToJson(a.geometry) != geometryToJson(b.geometry))
        d.push_back("geometry");
    bool sameMaps = a.maps.size() == b.maps.size();
    for (std::size_t i = 0; sameMaps && i < a.maps.size(); ++i) {
        const auto& x = a.maps[i];
        const auto& y = b.maps[i];
        sameMaps = x.layer == y.layer && x.head == y.head && x.values.size() == y.values.size() &&
                   std::memcmp(x.values.data(), y.values.data(), x.values.size() * sizeof(float)) == 0;
    }
    if (!sameMaps) d.push_back("maps");
    std::string out;
    for (const auto& s : d) out += (out.empty() ? "" : ", ") + s;
    return out;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version(
    application TEXT NOT NULL,
    version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS samples(
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    key TEXT NOT NULL,
    image TEXT NOT NULL,
    question TEXT NOT NULL,
    reference TEXT,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    answer_tokens INTEGER NOT NULL,
    settings TEXT NOT NULL,
    grid_rows INTEGER NOT NULL,
    grid_cols INTEGER NOT NULL,
    geometry TEXT NOT NULL,
    model_layers INTEGER NOT NULL,
    model_heads INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created TEXT NOT NULL,
    UNIQUE(dataset, key));
CREATE TABLE IF NOT EXISTS maps(
    sample INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    layer INTEGER NOT NULL,
    head INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY(sample, layer, head)) WITHOUT ROWID;
)sql";

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// StoredSample

const StoredMap* StoredSample::find(int layer, int head) const {
    for (const auto& m : maps)
        if (m.layer == layer && m.head == head) return &m;
    return nullptr;
}

std::optional<std::vector<float>> StoredSample::meanMap(int layer, const std::vector<int>& heads) const {
    std::set<int> wanted(heads.begin(), heads.end());
    const bool allHeads = heads.empty() || (modelHeads > 0 && int(wanted.size()) == modelHeads &&
                                            *wanted.begin() == 0 && *wanted.rbegin() == modelHeads - 1);
    std::vector<const StoredMap*> parts;
    if (allHeads) {
        if (const StoredMap* mean = find(layer, kHeadMean)) return mean->values;
        if (modelHeads <= 0) return std::nullopt;
        for (int h = 0; h < modelHeads; ++h) wanted.insert(h);
    }
    for (int h : heads.empty() ? std::vector<int>(wanted.begin(), wanted.end()) : heads) {
        const StoredMap* m = find(layer, h);
        if (!m) return std::nullopt;
        parts.push_back(m);
    }
    if (parts.empty()) return std::nullopt;
    std::vector<double> sum(parts.front()->values.size(), 0.0);
    for (const StoredMap* m : parts)
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += m->values[i];
    std::vector<float> out(sum.size());
    for (std::size_t i = 0; i < sum.size(); ++i) out[i] = float(sum[i] / double(parts.size()));
    return out;
}

models::AttentionMaps StoredSample::toAttentionMaps() const {
    models::AttentionMaps out;
    const std::int64_t cells = std::int64_t(gridRows) * gridCols;
    int heads = modelHeads;
    for (const auto& m : maps) heads = std::max(heads, m.head + 1);
    out.heads = std::max(heads, 1);
    out.imageKeys = cells;
    out.imageKeyPositions.resize(std::size_t(cells));
    for (std::int64_t i = 0; i < cells; ++i) out.imageKeyPositions[std::size_t(i)] = i;
    models::ImageSpan span;
    span.length = cells;
    span.grid = {gridRows, gridCols};
    out.imageSpans = {span};
    if (maps.empty()) return out;
    out.rows = {models::QueryRow{-1, -1, models::QueryKind::Answer}};
    std::set<int> layers;
    for (const auto& m : maps) layers.insert(m.layer);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int layer : layers) {
        models::LayerAttention la;
        la.layer = layer;
        la.values.assign(std::size_t(out.heads * cells), nan);
        const StoredMap* mean = find(layer, kHeadMean);
        std::vector<double> storedSum(std::size_t(cells), 0.0);
        int stored = 0;
        for (const auto& m : maps) {
            if (m.layer != layer || m.head == kHeadMean) continue;
            std::copy(m.values.begin(), m.values.end(), la.values.begin() + std::ptrdiff_t(m.head * cells));
            for (std::int64_t i = 0; i < cells; ++i) storedSum[std::size_t(i)] += m.values[std::size_t(i)];
            ++stored;
        }
        if (mean && stored < out.heads) {
            // The value that keeps the head mean exact: (H·mean − Σ stored) / (H − stored).
            const int rest = out.heads - stored;
            for (int h = 0; h < out.heads; ++h) {
                if (find(layer, h)) continue;
                for (std::int64_t i = 0; i < cells; ++i)
                    la.values[std::size_t(h * cells + i)] =
                        float((double(out.heads) * mean->values[std::size_t(i)] - storedSum[std::size_t(i)]) /
                              rest);
            }
        }
        out.layers.push_back(std::move(la));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// LabelStore

LabelStore::LabelStore(std::string path, sqlite3* db, bool readOnly)
    : m_path(std::move(path)), m_db(db), m_readOnly(readOnly) {}

LabelStore::LabelStore(LabelStore&& other) noexcept
    : m_path(std::move(other.m_path)), m_db(other.m_db), m_readOnly(other.m_readOnly) {
    other.m_db = nullptr;
}

LabelStore& LabelStore::operator=(LabelStore&& other) noexcept {
    if (this != &other) {
        if (m_db) sqlite3_close_v2(m_db);
        m_path = std::move(other.m_path);
        m_db = other.m_db;
        m_readOnly = other.m_readOnly;
        other.m_db = nullptr;
    }
    return *this;
}

LabelStore::~LabelStore() {
    if (m_db) sqlite3_close_v2(m_db);
}

void LabelStore::fail(int rc, const std::string& what) const {
    const char* message = m_db ? sqlite3_errmsg(m_db) : sqlite3_errstr(rc);
    throw Error(m_path + ": " + explain(rc, message) + " while " + what);
}

void LabelStore::exec(const char* sql) const {
    char* message = nullptr;
    const int rc = sqlite3_exec(m_db, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        const std::string text = message ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        throw Error(m_path + ": " + explain(rc, text.c_str()) + " while running " +
                    std::string(sql).substr(0, 40));
    }
}

LabelStore LabelStore::open(const std::string& path, const Options& options) {
    std::error_code ec;
    const bool exists = fs::exists(path, ec);
    if (fs::is_directory(path, ec)) throw Error(path + ": is a folder, not a label store file");
    const bool readOnly = options.access == Access::ReadOnly;
    if (!exists && (readOnly || !options.create)) throw Error(path + ": no such label store");
    if (!exists) {
        // Say why a new store cannot be made there (SQLite only says "unable to open").
        const fs::path parent = fs::absolute(path, ec).parent_path();
        if (fs::is_directory(parent, ec) && ::access(parent.c_str(), W_OK) != 0)
            throw Error(path + ": cannot create the label store: its folder is not writable (" +
                        std::strerror(errno) + ")");
    }

    sqlite3* db = nullptr;
    const int flags =
        (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    LabelStore store(path, db, readOnly);  // owns db from here, even on failure
    if (rc != SQLITE_OK) store.fail(rc, "opening");
    if (!readOnly && sqlite3_db_readonly(db, "main") == 1)
        throw Error(path + ": read-only: no permission to write it (open it read-only to browse)");
    sqlite3_busy_timeout(db, options.busyTimeoutMs);
    sqlite3_extended_result_codes(db, 1);

    // Look before touching anything: a foreign database must not be converted to WAL or given our tables.
    auto failFn = [&store](int code, const std::string& what) { store.fail(code, what); };
    const std::function<void(int, const std::string&)> onFail = failFn;
    std::vector<std::string> tables;
    {
        Statement s(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", onFail,
                    "reading the schema");
        while (s.step("reading the schema")) tables.push_back(s.text(0));
    }
    const bool empty = tables.empty();
    if (!empty) {
        if (std::find(tables.begin(), tables.end(), "schema_version") == tables.end()) {
            std::string list;
            for (std::size_t i = 0; i < tables.size() && i < 5; ++i) list += (i ? ", " : "") + tables[i];
            throw Error(path +
                        ": an SQLite database, but not an SD-RPN label store (it has no schema_version "
                        "table; tables: " +
                        list + (tables.size() > 5 ? ", ..." : "") + ")");
        }
        Statement s(db, "SELECT application, version FROM schema_version", onFail);
        if (!s.step("reading the schema version"))
            throw Error(path + ": not an SD-RPN label store (its schema_version table is empty)");
        const std::string application = s.text(0);
        const std::int64_t version = s.integer(1);
        if (application != kApplication)
            throw Error(path + ": not an SD-RPN label store (its schema_version says '" + application + "')");
        if (version > kSchemaVersion)
            throw Error(path + ": written by a newer SD-RPN Studio (label store schema version " +
                        std::to_string(version) + "; this build reads up to version " +
                        std::to_string(kSchemaVersion) + ")");
        if (version < 1)
            throw Error(path + ": unknown label store schema version " + std::to_string(version));
    } else if (readOnly) {
        throw Error(path + ": an empty database, not a label store");
    }

    if (!readOnly) {
        store.exec("PRAGMA journal_mode = WAL");
        store.exec("PRAGMA synchronous = NORMAL");
        if (options.maxPageCount > 0)
            store.exec(("PRAGMA max_page_count = " + std::to_string(options.maxPageCount)).c_str());
        if (empty) {
            // Two jobs may create the same store at once: IMMEDIATE serialises them, IF NOT EXISTS and the
            // row check make the second one a no-op.
            store.exec("BEGIN IMMEDIATE");
            try {
                store.exec(kSchema);
                Statement count(db, "SELECT COUNT(*) FROM schema_version", onFail);
                count.step("reading the schema version");
                if (count.integer(0) == 0) {
                    Statement ins(db, "INSERT INTO schema_version(application, version) VALUES(?, ?)",
                                  onFail);
                    ins.bind(1, std::string(kApplication)).bind(2, kSchemaVersion);
                    ins.step("creating the schema");
                }
                store.exec("COMMIT");
            } catch (...) {
                sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        }
    }
    store.exec("PRAGMA foreign_keys = ON");
    return store;
}

bool LabelStore::insert(const StoredSample& sample) {
    const std::function<void(int, const std::string&)> onFail = [this, &sample](int rc, const std::string&) {
        fail(rc, "writing sample " + sample.dataset + "/" + sample.key);
    };
    {
        Statement s(
            m_db,
            "INSERT OR IGNORE INTO samples(dataset, key, image, question, reference, model, answer, "
            "answer_tokens, settings, grid_rows, grid_cols, geometry, model_layers, model_heads, seconds, "
            "created) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "COALESCE(?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))",
            onFail);
        s.bind(1, sample.dataset).bind(2, sample.key).bind(3, sample.image).bind(4, sample.question);
        s.bind(5, sample.reference).bind(6, sample.model).bind(7, sample.answer).bind(8, sample.answerTokens);
        s.bind(9, sample.settings).bind(10, sample.gridRows).bind(11, sample.gridCols);
        s.bind(12, geometryToJson(sample.geometry));
        s.bind(13, sample.modelLayers).bind(14, sample.modelHeads).bind(15, sample.seconds);
        s.bind(16, sample.created.empty() ? std::optional<std::string>() : sample.created);
        s.step("writing");
    }
    if (sqlite3_changes(m_db) == 0) return false;
    const std::int64_t id = sqlite3_last_insert_rowid(m_db);
    Statement m(m_db, "INSERT INTO maps(sample, layer, head, data) VALUES(?, ?, ?, ?)", onFail);
    for (const auto& map : sample.maps) {
        m.bind(1, id).bind(2, map.layer).bind(3, map.head).bindBlob(4, encodeHalf(map.values));
        m.step("writing");
        m.reset();
    }
    return true;
}

namespace {

void validate(const StoredSample& s) {
    const std::string name = s.dataset + "/" + s.key;
    if (s.dataset.empty() || s.key.empty()) throw Error("a stored sample needs a dataset id and a key");
    if (s.gridRows < 0 || s.gridCols < 0) throw Error("sample " + name + ": negative grid size");
    if (s.gridRows > kMaxGridSide || s.gridCols > kMaxGridSide)
        throw Error("sample " + name + ": grid " + std::to_string(s.gridRows) + "x" +
                    std::to_string(s.gridCols) + " is larger than " + std::to_string(kMaxGridSide) +
                    " a side");
    if (s.modelLayers < 0 || s.modelHeads < 0 || s.modelLayers > kMaxStoredCount ||
        s.modelHeads > kMaxStoredCount)
        throw Error("sample " + name + ": layer and head counts " + std::to_string(s.modelLayers) + ", " +
                    std::to_string(s.modelHeads) + " are out of range");
    const std::size_t cells = std::size_t(s.gridRows) * std::size_t(s.gridCols);
    std::set<std::pair<int, int>> seen;
    std::int64_t heads = s.modelHeads;
    for (const auto& m : s.maps) {
        if (m.layer < 0 || m.head < kHeadMean || m.layer >= kMaxStoredCount || m.head >= kMaxStoredCount)
            throw Error("sample " + name + ": bad map (layer " + std::to_string(m.layer) + ", head " +
                        std::to_string(m.head) + ")");
        heads = std::max<std::int64_t>(heads, m.head + 1);
        if (m.values.size() != cells || cells == 0)
            throw Error("sample " + name + ": map of layer " + std::to_string(m.layer) + " head " +
                        std::to_string(m.head) + " has " + std::to_string(m.values.size()) +
                        " values, the grid " + std::to_string(s.gridRows) + "x" + std::to_string(s.gridCols) +
                        " has " + std::to_string(cells));
        if (!seen.insert({m.layer, m.head}).second)
            throw Error("sample " + name + ": layer " + std::to_string(m.layer) + " head " +
                        std::to_string(m.head) + " stored twice");
    }
    if (!s.maps.empty() && heads * std::int64_t(cells) > kMaxLayerMapValues)
        throw Error("sample " + name + ": " + std::to_string(heads) + " heads of " + std::to_string(cells) +
                    " cells are more than one layer's maps may hold");
    if (!nlohmann::json::accept(s.settings))
        throw Error("sample " + name + ": the label settings are not valid JSON");
}

}  // namespace

bool LabelStore::put(const StoredSample& sample) {
    validate(sample);
    exec("BEGIN IMMEDIATE");
    try {
        const bool added = insert(sample);
        exec("COMMIT");
        return added;
    } catch (...) {
        sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

bool LabelStore::contains(const std::string& dataset, const std::string& key) const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db, "SELECT 1 FROM samples WHERE dataset = ? AND key = ?", onFail);
    s.bind(1, dataset).bind(2, key);
    return s.step("looking up a sample");
}

std::vector<std::string> LabelStore::keys(const std::string& dataset) const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db, "SELECT key FROM samples WHERE ?1 = '' OR dataset = ?1 ORDER BY id", onFail);
    s.bind(1, dataset);
    std::vector<std::string> out;
    while (s.step("listing keys")) out.push_back(s.text(0));
    return out;
}

std::int64_t LabelStore::count(const std::string& dataset) const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db, "SELECT COUNT(*) FROM samples WHERE ?1 = '' OR dataset = ?1", onFail);
    s.bind(1, dataset);
    s.step("counting samples");
    return s.integer(0);
}

std::vector<std::string> LabelStore::datasets() const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db, "SELECT DISTINCT dataset FROM samples ORDER BY dataset", onFail);
    std::vector<std::string> out;
    while (s.step("listing datasets")) out.push_back(s.text(0));
    return out;
}

std::vector<std::string> LabelStore::models() const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db, "SELECT DISTINCT model FROM samples ORDER BY model", onFail);
    std::vector<std::string> out;
    while (s.step("listing models")) out.push_back(s.text(0));
    return out;
}

namespace {

// A read snapshot for several statements; nothing when the connection is already in a transaction.
class ReadSnapshot {
public:
    ReadSnapshot(sqlite3* db, const std::function<void(int, const std::string&)>& fail) : m_db(db) {
        if (!sqlite3_get_autocommit(db)) return;
        const int rc = sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) fail(rc, "starting a read");
        m_active = true;
    }
    ~ReadSnapshot() {
        if (m_active) sqlite3_exec(m_db, "COMMIT", nullptr, nullptr, nullptr);
    }
    ReadSnapshot(const ReadSnapshot&) = delete;
    ReadSnapshot& operator=(const ReadSnapshot&) = delete;

private:
    sqlite3* m_db;
    bool m_active = false;
};

void readMaps(Statement& maps, std::int64_t id, StoredSample& out) {
    maps.bind(1, id);
    while (maps.step("reading maps")) {
        StoredMap m;
        m.layer = int(maps.integer(0));
        m.head = int(maps.integer(1));
        m.values = maps.halfBlob(2);
        out.maps.push_back(std::move(m));
    }
    maps.reset();
}

// One sample row with its maps, checked as a write would be; errors name the store file.
StoredSample readSample(const std::string& path, const Statement& row, Statement& maps) {
    StoredSample sample;
    try {
        sample = sampleFromRow(row);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
    readMaps(maps, row.integer(0), sample);  // SQLite's errors name the file already
    try {
        validate(sample);
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
    return sample;
}

constexpr const char* kMapsQuery = "SELECT layer, head, data FROM maps WHERE sample = ? ORDER BY layer, head";

}  // namespace

std::optional<StoredSample> LabelStore::get(const std::string& dataset, const std::string& key) const {
    const std::function<void(int, const std::string&)> onFail = [this, &dataset, &key](int rc,
                                                                                       const std::string& w) {
        fail(rc, w + " of sample " + dataset + "/" + key);
    };
    ReadSnapshot snapshot(m_db, onFail);
    Statement s(
        m_db,
        (std::string("SELECT ") + kSampleColumns + " FROM samples WHERE dataset = ? AND key = ?").c_str(),
        onFail);
    s.bind(1, dataset).bind(2, key);
    if (!s.step("reading")) return std::nullopt;
    Statement maps(m_db, kMapsQuery, onFail);
    return readSample(m_path, s, maps);
}

std::vector<SampleSummary> LabelStore::list(std::int64_t offset, std::int64_t limit,
                                            const std::string& dataset) const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    Statement s(m_db,
                "SELECT dataset, key, image, question, answer, model, created, answer_tokens, "
                "(SELECT COUNT(*) FROM maps WHERE maps.sample = samples.id) FROM samples "
                "WHERE ?1 = '' OR dataset = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
                onFail);
    s.bind(1, dataset)
        .bind(2, limit < 0 ? std::int64_t(-1) : limit)
        .bind(3, std::max<std::int64_t>(offset, 0));
    std::vector<SampleSummary> out;
    while (s.step("listing samples")) {
        SampleSummary r;
        r.dataset = s.text(0);
        r.key = s.text(1);
        r.image = s.text(2);
        r.question = s.text(3);
        r.answer = s.text(4);
        r.model = s.text(5);
        r.created = s.text(6);
        r.answerTokens = int(s.integer(7));
        r.mapCount = int(s.integer(8));
        out.push_back(std::move(r));
    }
    return out;
}

void LabelStore::forEach(const std::function<bool(const StoredSample&)>& visit) const {
    const std::function<void(int, const std::string&)> onFail = [this](int rc, const std::string& w) {
        fail(rc, w);
    };
    ReadSnapshot snapshot(m_db, onFail);
    Statement s(m_db, (std::string("SELECT ") + kSampleColumns + " FROM samples ORDER BY id").c_str(),
                onFail);
    Statement maps(m_db, kMapsQuery, onFail);
    while (s.step("reading samples")) {
        const StoredSample sample = readSample(m_path, s, maps);
        if (!visit(sample)) break;
    }
}

MergeReport LabelStore::mergeFrom(const std::string& input, JobContext& job) {
    std::error_code ec;
    if (fs::equivalent(input, m_path, ec)) throw Error(input + ": cannot merge a store into itself");
    Options readOptions;
    readOptions.access = Access::ReadOnly;
    const LabelStore source = open(input, readOptions);
    const std::int64_t total = source.count();
    MergeReport report;
    std::int64_t seen = 0;
    constexpr std::int64_t kBatch = 256;  // samples per transaction: fast, and a crash loses one batch
    bool inTransaction = false;
    try {
        source.forEach([&](const StoredSample& sample) {
            if (!inTransaction) {
                exec("BEGIN IMMEDIATE");
                inTransaction = true;
            }
            validate(sample);
            if (insert(sample)) {
                ++report.added;
            } else {
                const std::optional<StoredSample> ours = get(sample.dataset, sample.key);
                const std::string diff = ours ? differences(*ours, sample) : "unreadable";
                if (diff.empty())
                    ++report.duplicates;
                else
                    report.conflicts.push_back({input, sample.dataset, sample.key, diff});
            }
            if (++seen % kBatch == 0) {
                exec("COMMIT");
                inTransaction = false;
                job.report(seen, total, "merging " + input);
                job.throwIfCancelled();
            }
            return true;
        });
        if (inTransaction) exec("COMMIT");
    } catch (...) {
        if (inTransaction) sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    job.report(seen, total, "merged " + input);
    return report;
}

MergeReport mergeStores(const std::string& output, const std::vector<std::string>& inputs, JobContext& job) {
    if (inputs.empty()) throw Error("merge: no input stores given");
    for (const auto& input : inputs) {
        std::error_code ec;
        if (!fs::exists(input, ec)) throw Error(input + ": no such label store");
    }
    LabelStore out = LabelStore::open(output);
    MergeReport total;
    for (const auto& input : inputs) {
        MergeReport r = out.mergeFrom(input, job);
        total.added += r.added;
        total.duplicates += r.duplicates;
        total.conflicts.insert(total.conflicts.end(), r.conflicts.begin(), r.conflicts.end());
    }
    return total;
}

}  // namespace sdrpn::data
