#include "app/session_file.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>

#include "core/io/safetensors.h"
#include "core/result.h"
#include "core/sdrpn/roi.h"
#include "app/qt_json.h"

namespace {

QString resolve(const QString& path, const QString& baseDir) {
    if (path.isEmpty() || QDir::isAbsolutePath(path) || baseDir.isEmpty()) return path;
    return QDir::cleanPath(QDir(baseDir).absoluteFilePath(path));
}

bool readString(const QJsonObject& object, const char* key, QString* out, QString* error) {
    const QJsonValue value = object.value(QLatin1String(key));
    if (value.isUndefined() || value.isNull()) return true;
    if (!value.isString()) {
        if (error) *error = QObject::tr("key \"%1\" must be a string").arg(QLatin1String(key));
        return false;
    }
    *out = value.toString();
    return true;
}

QJsonObject geometryToJson(const sdrpn::models::GridGeometry& g) {
    QJsonObject o;
    o["fit"] = int(g.fit);
    o["source"] = QJsonArray{g.sourceWidth, g.sourceHeight};
    o["processed"] = QJsonArray{g.processedWidth, g.processedHeight};
    o["grid"] = QJsonArray{g.gridRows, g.gridCols};
    o["scale"] = QJsonArray{g.scaleX, g.scaleY};
    o["offset"] = QJsonArray{g.offsetX, g.offsetY};
    o["resized"] = QJsonArray{g.resizedWidth, g.resizedHeight};
    o["pad"] = QJsonArray{g.padLeft, g.padTop};
    o["crop"] = QJsonArray{g.cropLeft, g.cropTop};
    return o;
}

// A JSON number as T, refused when it is not finite or does not fit (the cast would be undefined).
template <class T>
T numberAs(const QJsonValue& value, const std::string& key) {
    const double d = value.toDouble(std::numeric_limits<double>::quiet_NaN());
    bool fits = std::isfinite(d);
    if constexpr (std::is_integral_v<T>)
        fits = fits && d >= double(std::numeric_limits<T>::min()) &&
               d <= double(std::numeric_limits<T>::max()) && d == std::floor(d);
    if (!fits) throw std::runtime_error("\"" + key + "\" must be a number that fits");
    return T(d);
}

sdrpn::models::GridGeometry geometryFromJson(const QJsonObject& o) {
    sdrpn::models::GridGeometry g;
    auto pair = [&](const char* key, auto& a, auto& b) {
        const QJsonArray v = o.value(QLatin1String(key)).toArray();
        using A = std::decay_t<decltype(a)>;
        using B = std::decay_t<decltype(b)>;
        if (v.size() != 2) throw std::runtime_error(std::string("geometry key \"") + key + "\" needs [a, b]");
        a = numberAs<A>(v[0], std::string("geometry.") + key);
        b = numberAs<B>(v[1], std::string("geometry.") + key);
    };
    g.fit = sdrpn::models::ImageFit(o.value("fit").toInt());
    pair("source", g.sourceWidth, g.sourceHeight);
    pair("processed", g.processedWidth, g.processedHeight);
    pair("grid", g.gridRows, g.gridCols);
    pair("scale", g.scaleX, g.scaleY);
    pair("offset", g.offsetX, g.offsetY);
    pair("resized", g.resizedWidth, g.resizedHeight);
    pair("pad", g.padLeft, g.padTop);
    pair("crop", g.cropLeft, g.cropTop);
    return g;
}

QJsonArray sizeToJson(const QSize& size) {
    return QJsonArray{size.width(), size.height()};
}

QSize sizeFromJson(const QJsonValue& value) {
    const QJsonArray a = value.toArray();
    return a.size() == 2 ? QSize(a[0].toInt(), a[1].toInt()) : QSize();
}

std::vector<float> readF32(const sdrpn::io::SafetensorsFile& file, const std::string& name,
                           std::int64_t numel) {
    const sdrpn::io::RawTensor raw = file.raw(name);
    if (raw.info->dtype != sdrpn::io::DType::F32 || raw.info->numel() != numel)
        throw std::runtime_error("tensor \"" + name + "\" must be F32 with " + std::to_string(numel) +
                                 " values");
    std::vector<float> values(static_cast<std::size_t>(numel));
    std::memcpy(values.data(), raw.data, values.size() * sizeof(float));
    return values;
}

// Throws naming what in a sidecar's maps does not add up: the views index the values by heads x rows x
// keys and the keys by the image spans and their grids, so those must agree before anything draws them.
void checkMaps(const sdrpn::models::AttentionMaps& m) {
    auto fail = [](const std::string& what) { throw std::runtime_error("maps: " + what); };
    if (m.heads < 0 || m.heads > 4096) fail("heads " + std::to_string(m.heads) + " outside [0, 4096]");
    if (m.imageKeys < 0 || m.imageKeys > (std::int64_t(1) << 24))
        fail("image_keys " + std::to_string(m.imageKeys) + " outside [0, 2^24]");
    if (m.rows.size() > (std::size_t(1) << 20))
        fail(std::to_string(m.rows.size()) + " rows (more than 2^20)");
    if (!m.imageKeyPositions.empty() && std::int64_t(m.imageKeyPositions.size()) != m.imageKeys)
        fail(std::to_string(m.imageKeyPositions.size()) + " image key positions for " +
             std::to_string(m.imageKeys) + " image keys");
    std::int64_t spanned = 0;
    for (const auto& span : m.imageSpans) {
        if (span.start < 0 || span.length < 0 || span.length > m.imageKeys)
            fail("an image span [" + std::to_string(span.start) + ", +" + std::to_string(span.length) +
                 ") outside the " + std::to_string(m.imageKeys) + " image keys");
        if (span.grid.rows < 0 || span.grid.cols < 0 ||
            ((span.grid.rows > 0 || span.grid.cols > 0) &&
             std::int64_t(span.grid.rows) * span.grid.cols != span.length))
            fail("an image span of " + std::to_string(span.length) + " rows with a " +
                 std::to_string(span.grid.rows) + " x " + std::to_string(span.grid.cols) + " grid");
        spanned += span.length;
    }
    if (!m.imageSpans.empty() && spanned != m.imageKeys)
        fail("the image spans cover " + std::to_string(spanned) + " of " + std::to_string(m.imageKeys) +
             " image keys");
    for (const auto& row : m.rows)
        if (int(row.kind) < 0 || int(row.kind) > int(sdrpn::models::QueryKind::Answer))
            fail("a row of unknown kind " + std::to_string(int(row.kind)));
    for (std::size_t i = 1; i < m.layers.size(); ++i)
        if (m.layers[i].layer <= m.layers[i - 1].layer) fail("layers not in increasing order");
}

}  // namespace

QString sessionMapsPath(const QString& sessionPath) {
    QString base = sessionPath;
    if (base.endsWith(QLatin1String(".json"), Qt::CaseInsensitive)) base.chop(5);
    return base + QStringLiteral(".maps.safetensors");
}

bool saveSessionMaps(const QString& path, const QuestionResult* maps, const TwoStageAnswer* roi,
                     QString* error) {
    QJsonObject meta;
    std::vector<sdrpn::io::TensorRecord> records;
    if (maps) {
        const auto& m = maps->maps;
        QJsonObject o;
        o["question"] = maps->question;
        o["answer"] = maps->answer;
        o["image_size"] = sizeToJson(maps->imageSize);
        o["geometry"] = geometryToJson(maps->geometry);
        o["hit_token_limit"] = maps->hitTokenLimit;
        o["heads"] = m.heads;
        o["image_keys"] = double(m.imageKeys);
        QJsonArray positions;
        for (std::int64_t p : m.imageKeyPositions) positions.append(double(p));
        o["image_key_positions"] = positions;
        QJsonArray spans;
        for (const auto& span : m.imageSpans)
            spans.append(QJsonArray{double(span.start), double(span.length), span.grid.rows, span.grid.cols});
        o["image_spans"] = spans;
        QJsonArray rows;
        for (const auto& row : m.rows)
            rows.append(QJsonArray{double(row.position), double(row.token), int(row.kind)});
        o["rows"] = rows;
        QJsonArray layers;
        for (const auto& layer : m.layers) {
            layers.append(layer.layer);
            sdrpn::io::TensorRecord r;
            r.name = "layer." + std::to_string(layer.layer);
            r.shape = {m.heads, std::int64_t(m.rows.size()), m.imageKeys};
            r.data = layer.values.data();
            if (std::int64_t(layer.values.size()) != r.shape[0] * r.shape[1] * r.shape[2]) {
                if (error)
                    *error =
                        QObject::tr("%1: layer %2 has a wrong number of values").arg(path).arg(layer.layer);
                return false;
            }
            records.push_back(std::move(r));
        }
        o["layers"] = layers;
        meta["maps"] = o;
    }
    if (roi) {
        QJsonObject o;
        o["question"] = roi->question;
        o["baseline_answer"] = roi->baselineAnswer;
        o["roi_answer"] = roi->roiAnswer;
        o["roi_answer_is_baseline"] = roi->roiAnswerIsBaseline;
        o["image_size"] = sizeToJson(roi->imageSize);
        o["geometry"] = geometryToJson(roi->geometry);
        o["grid"] = QJsonArray{roi->rows, roi->cols};
        o["roi_settings"] = toQJson(roi->roiSettings.toJson());
        o["roi_tokens"] = roi->roiTokens;
        o["kv_reused"] = roi->kvReused;
        meta["roi"] = o;
        if (std::int64_t(roi->roiLogits.size()) != std::int64_t(roi->rows) * roi->cols) {
            if (error) *error = QObject::tr("%1: the RoI logits do not fill the grid").arg(path);
            return false;
        }
        sdrpn::io::TensorRecord r;
        r.name = "roi.logits";
        r.shape = {roi->rows, roi->cols};
        r.data = roi->roiLogits.data();
        if (!roi->roiLogits.empty()) records.push_back(std::move(r));
    }
    const std::map<std::string, std::string> metadata{
        {"format", "sdrpn-session-maps"},
        {"sdrpn.maps", QJsonDocument(meta).toJson(QJsonDocument::Compact).toStdString()}};
    const auto written =
        sdrpn::guarded([&] { sdrpn::io::writeSafetensors(path.toStdString(), records, metadata); });
    if (!written.ok()) {
        if (error) *error = QString::fromStdString(written.message());
        return false;
    }
    return true;
}

std::optional<SessionMaps> loadSessionMaps(const QString& path, QString* error) {
    auto loaded = sdrpn::guarded([&] {
        const auto file = sdrpn::io::SafetensorsFile::open(path.toStdString());
        const auto it = file->metadata().find("sdrpn.maps");
        if (it == file->metadata().end()) throw std::runtime_error("no \"sdrpn.maps\" metadata");
        const QJsonObject meta = QJsonDocument::fromJson(QByteArray::fromStdString(it->second)).object();
        SessionMaps out;
        if (meta.value("maps").isObject()) {
            const QJsonObject o = meta.value("maps").toObject();
            auto r = std::make_shared<QuestionResult>();
            r->question = o.value("question").toString();
            r->answer = o.value("answer").toString();
            r->imageSize = sizeFromJson(o.value("image_size"));
            r->geometry = geometryFromJson(o.value("geometry").toObject());
            r->hitTokenLimit = o.value("hit_token_limit").toBool();
            auto& m = r->maps;
            m.heads = o.value("heads").toInt();
            m.imageKeys = numberAs<std::int64_t>(o.value("image_keys"), "image_keys");
            for (const QJsonValue& v : o.value("image_key_positions").toArray())
                m.imageKeyPositions.push_back(numberAs<std::int64_t>(v, "image_key_positions"));
            for (const QJsonValue& v : o.value("image_spans").toArray()) {
                const QJsonArray a = v.toArray();
                sdrpn::models::ImageSpan span;
                span.start = numberAs<std::int64_t>(a.at(0), "image_spans");
                span.length = numberAs<std::int64_t>(a.at(1), "image_spans");
                span.grid = {a.at(2).toInt(), a.at(3).toInt()};
                m.imageSpans.push_back(span);
            }
            for (const QJsonValue& v : o.value("rows").toArray()) {
                const QJsonArray a = v.toArray();
                m.rows.push_back({numberAs<std::int64_t>(a.at(0), "rows"),
                                  numberAs<std::int64_t>(a.at(1), "rows"),
                                  sdrpn::models::QueryKind(a.at(2).toInt())});
            }
            checkMaps(m);  // the sizes first: the layers' size follows from them
            const std::int64_t numel = std::int64_t(m.heads) * std::int64_t(m.rows.size()) * m.imageKeys;
            for (const QJsonValue& v : o.value("layers").toArray()) {
                sdrpn::models::LayerAttention layer;
                layer.layer = v.toInt();
                layer.values = readF32(*file, "layer." + std::to_string(layer.layer), numel);
                m.layers.push_back(std::move(layer));
            }
            checkMaps(m);
            out.maps = std::move(r);
        }
        if (meta.value("roi").isObject()) {
            const QJsonObject o = meta.value("roi").toObject();
            auto a = std::make_shared<TwoStageAnswer>();
            a->question = o.value("question").toString();
            a->baselineAnswer = o.value("baseline_answer").toString();
            a->roiAnswer = o.value("roi_answer").toString();
            a->roiAnswerIsBaseline = o.value("roi_answer_is_baseline").toBool();
            a->imageSize = sizeFromJson(o.value("image_size"));
            a->geometry = geometryFromJson(o.value("geometry").toObject());
            const QJsonArray grid = o.value("grid").toArray();
            a->rows = grid.at(0).toInt();
            a->cols = grid.at(1).toInt();
            a->roiSettings = sdrpn::RoiSettings::fromJson(fromQJson(o.value("roi_settings").toObject()),
                                                          path.toStdString() + ": roi_settings");
            a->roiTokens = o.value("roi_tokens").toInt();
            a->kvReused = o.value("kv_reused").toBool();
            if (a->rows > 0 && a->cols > 0) {
                a->roiLogits = readF32(*file, "roi.logits", std::int64_t(a->rows) * a->cols);
                a->roi = sdrpn::postprocessRoi(a->roiLogits, a->rows, a->cols, a->roiSettings, a->geometry);
            }
            out.roi = std::move(a);
        }
        return out;
    });
    if (!loaded) {
        if (error) *error = QStringLiteral("%1: %2").arg(path, QString::fromStdString(loaded.message()));
        return std::nullopt;
    }
    return std::move(loaded).value();
}

QJsonObject sessionToJson(const StudioSession& session) {
    QJsonObject json;
    json["format"] = QLatin1String(kSessionFormat);
    json["version"] = kSessionVersion;
    QJsonObject model;
    model["folder"] = session.modelFolder;
    json["model"] = model;
    QJsonObject image;
    image["path"] = session.imagePath;
    if (!session.imagePng.isEmpty()) image["png_base64"] = QString::fromLatin1(session.imagePng.toBase64());
    json["image"] = image;
    json["question"] = session.question;
    json["answer"] = session.answer;
    json["roi_answer"] = session.roiAnswer;
    QJsonObject rpn;
    rpn["path"] = session.rpnPath;
    rpn["untrained"] = session.rpnUntrained;
    json["rpn"] = rpn;
    if (!session.labelSettings.isEmpty()) json["label_settings"] = session.labelSettings;
    if (!session.roiSettings.isEmpty()) json["roi_settings"] = session.roiSettings;
    // "head" stays the one head (-1 otherwise) so that older builds still open the file; a set of heads,
    // the grounding choice and the answer token are further keys.
    QJsonObject selection{{"layer", session.layerSlot}, {"head", session.head}, {"query", session.query}};
    if (!session.heads.empty()) {
        QJsonArray heads;
        for (int h : session.heads) heads.append(h);
        selection["heads"] = heads;
    }
    if (session.groundingHeads) selection["grounding_heads"] = true;
    if (session.answerToken >= 0) selection["answer_token"] = session.answerToken;
    json["selection"] = selection;
    if (session.hasView) {
        QJsonObject view;
        view["fit"] = session.view.fitToView;
        view["zoom"] = session.view.zoom;
        view["center"] = QJsonArray{session.view.center.x(), session.view.center.y()};
        json["view"] = view;
    }
    return json;
}

std::optional<StudioSession> sessionFromJson(const QJsonObject& json, const QString& baseDir,
                                             QString* error) {
    if (json.value("format").toString() != QLatin1String(kSessionFormat)) {
        if (error)
            *error = QObject::tr("not a studio session (key \"format\" is not \"%1\")").arg(kSessionFormat);
        return std::nullopt;
    }
    const int version = json.value("version").toInt(-1);
    if (version < 1 || version > kSessionVersion) {
        if (error)
            *error = QObject::tr("unsupported session version %1 (this build reads 1 to %2)")
                         .arg(version)
                         .arg(kSessionVersion);
        return std::nullopt;
    }
    StudioSession s;
    const QJsonObject model = json.value("model").toObject();
    const QJsonObject image = json.value("image").toObject();
    if (!readString(model, "folder", &s.modelFolder, error) ||
        !readString(image, "path", &s.imagePath, error) ||
        !readString(json, "question", &s.question, error) || !readString(json, "answer", &s.answer, error) ||
        !readString(json, "roi_answer", &s.roiAnswer, error))
        return std::nullopt;
    const QJsonObject rpn = json.value("rpn").toObject();
    if (!readString(rpn, "path", &s.rpnPath, error)) return std::nullopt;
    s.rpnPath = resolve(s.rpnPath, baseDir);
    s.rpnUntrained = rpn.value("untrained").toBool(false);
    s.labelSettings = json.value("label_settings").toObject();
    s.roiSettings = json.value("roi_settings").toObject();
    const QJsonObject selection = json.value("selection").toObject();
    s.layerSlot = selection.value("layer").toInt(-1);
    s.head = selection.value("head").toInt(-1);
    const QJsonValue heads = selection.value("heads");
    if (!heads.isUndefined() && !heads.isNull()) {
        bool valid = heads.isArray();
        for (const QJsonValue& h : heads.toArray()) {
            valid = valid && h.isDouble() && h.toDouble() >= 0 && h.toDouble() == double(h.toInt());
            s.heads.push_back(h.toInt());
        }
        if (!valid) {
            if (error)
                *error = QObject::tr("key \"selection.heads\" must be an array of head numbers (0, 1, ...)");
            return std::nullopt;
        }
    }
    s.groundingHeads = selection.value("grounding_heads").toBool(false);
    s.query = selection.value("query").toInt(-1);
    s.answerToken = selection.value("answer_token").toInt(-1);
    s.modelFolder = resolve(s.modelFolder, baseDir);
    s.imagePath = resolve(s.imagePath, baseDir);
    QString png;
    if (!readString(image, "png_base64", &png, error)) return std::nullopt;
    if (!png.isEmpty()) s.imagePng = QByteArray::fromBase64(png.toLatin1());

    const QJsonValue viewValue = json.value("view");
    if (viewValue.isObject()) {
        const QJsonObject view = viewValue.toObject();
        const QJsonArray center = view.value("center").toArray();
        if (!view.value("zoom").isDouble() || center.size() != 2 || !center[0].isDouble() ||
            !center[1].isDouble()) {
            if (error) *error = QObject::tr("key \"view\" needs \"zoom\" (number) and \"center\" ([x, y])");
            return std::nullopt;
        }
        s.hasView = true;
        s.view.fitToView = view.value("fit").toBool(false);
        s.view.zoom = view.value("zoom").toDouble();
        s.view.center = QPointF(center[0].toDouble(), center[1].toDouble());
    }
    return s;
}

bool saveSessionFile(const QString& path, const StudioSession& session, QString* error) {
    const QString mapsPath = sessionMapsPath(path);
    QJsonObject json = sessionToJson(session);
    if (session.maps || session.roi) {
        if (!saveSessionMaps(mapsPath, session.maps.get(), session.roi.get(), error)) return false;
        json["maps"] = QJsonObject{{"file", QFileInfo(mapsPath).fileName()}};
    } else if (QFileInfo::exists(mapsPath)) {
        QFile::remove(mapsPath);  // a stale sidecar of an earlier save would not match this session
    }
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        if (error) *error = QObject::tr("%1: cannot write (%2)").arg(path, file.errorString());
        return false;
    }
    file.write(QJsonDocument(json).toJson(QJsonDocument::Indented));
    if (!file.commit()) {
        if (error) *error = QObject::tr("%1: cannot write (%2)").arg(path, file.errorString());
        return false;
    }
    return true;
}

std::optional<StudioSession> loadSessionFile(const QString& path, QString* error) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        if (error) *error = QObject::tr("%1: cannot open (%2)").arg(path, file.errorString());
        return std::nullopt;
    }
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &parseError);
    if (doc.isNull() || !doc.isObject()) {
        if (error)
            *error = QObject::tr("%1: not a JSON object (%2 at offset %3)")
                         .arg(path, parseError.errorString())
                         .arg(parseError.offset);
        return std::nullopt;
    }
    QString why;
    const QString baseDir = QFileInfo(path).absolutePath();
    auto session = sessionFromJson(doc.object(), baseDir, &why);
    if (!session) {
        if (error) *error = QStringLiteral("%1: %2").arg(path, why);
        return session;
    }
    const QString mapsFile = doc.object().value("maps").toObject().value("file").toString();
    if (!mapsFile.isEmpty()) {
        std::optional<SessionMaps> maps = loadSessionMaps(resolve(mapsFile, baseDir), error);
        if (!maps) return std::nullopt;
        session->maps = std::move(maps->maps);
        session->roi = std::move(maps->roi);
    }
    return session;
}
