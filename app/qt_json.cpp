#include "app/qt_json.h"

#include <QByteArray>
#include <QJsonDocument>

QJsonObject toQJson(const nlohmann::json& json) {
    return QJsonDocument::fromJson(QByteArray::fromStdString(json.dump())).object();
}

nlohmann::json fromQJson(const QJsonObject& json) {
    return nlohmann::json::parse(QJsonDocument(json).toJson(QJsonDocument::Compact).toStdString());
}
