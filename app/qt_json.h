// The core's settings JSON (nlohmann) as Qt JSON and back: the objects the studio's panels edit and its
// session files hold.
#pragma once

#include <QJsonObject>
#include <nlohmann/json.hpp>

QJsonObject toQJson(const nlohmann::json& json);
nlohmann::json fromQJson(const QJsonObject& json);
