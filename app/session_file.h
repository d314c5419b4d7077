// StudioSession: what File › Save Session writes and File › Open Session restores: the image (its path, or
// the pixels themselves for a pasted image), the question, the model folder and the view (zoom, centre,
// fit). Later: answers, maps, boxes and settings, each under its own key.
//
// File format: JSON, {"format": "sdrpn-studio-session", "version": 1, ...}; paths are absolute, and a
// relative path is resolved against the session file's folder (a session moved with its image still opens).
//
//   StudioSession s = window->currentSession();
//   QString error;
//   if (!saveSessionFile(path, s, &error)) report(error);
//   std::optional<StudioSession> back = loadSessionFile(path, &error);
//
// Errors: the functions return false / nullopt and set `error` to a message naming the file and the key.
#pragma once

#include <optional>

#include <QByteArray>
#include <QJsonObject>
#include <QString>

#include "widgets/image_view.h"

struct StudioSession {
    QString imagePath;    // empty for a pasted image
    QByteArray imagePng;  // the pixels of a pasted image (PNG), else empty
    QString question;
    QString answer;
    QString modelFolder;
    bool hasView = false;  // false: fit the image
    ImageViewState view;
};

inline constexpr const char* kSessionFormat = "sdrpn-studio-session";
inline constexpr int kSessionVersion = 1;

QJsonObject sessionToJson(const StudioSession& session);
// `baseDir` resolves relative paths; `error` names the key at fault.
std::optional<StudioSession> sessionFromJson(const QJsonObject& json, const QString& baseDir, QString* error);

bool saveSessionFile(const QString& path, const StudioSession& session, QString* error);
std::optional<StudioSession> loadSessionFile(const QString& path, QString* error);
