#include "app/session_file.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>

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

}  // namespace

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
        !readString(json, "question", &s.question, error) || !readString(json, "answer", &s.answer, error))
        return std::nullopt;
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
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        if (error) *error = QObject::tr("%1: cannot write (%2)").arg(path, file.errorString());
        return false;
    }
    file.write(QJsonDocument(sessionToJson(session)).toJson(QJsonDocument::Indented));
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
    auto session = sessionFromJson(doc.object(), QFileInfo(path).absolutePath(), &why);
    if (!session && error) *error = QStringLiteral("%1: %2").arg(path, why);
    return session;
}
