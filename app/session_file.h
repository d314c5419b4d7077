// StudioSession: what File › Save Session writes and File › Open Session restores: the image (its path, or
// the pixels themselves for a pasted image), the question, the answers (baseline and RoI), the model
// folder, the RPN (checkpoint path or the untrained twig), the label and RoI settings (the JSON the CLI
// reads), the view (zoom, centre, fit) and the attention selection, and the captured attention maps with
// the RPN's RoI logits, so that reopening shows the raw, denoised and RoI views without running the model.
//
// File format: JSON, {"format": "sdrpn-studio-session", "version": 2, ...}; paths are absolute, and a
// relative path is resolved against the session file's folder (a session moved with its image still opens).
// The maps go to a sidecar next to the JSON, `<session>.maps.safetensors` (sessionMapsPath): one F32 tensor
// per captured layer, "layer.<n>" [heads, rows, image keys], the RoI logits "roi.logits" [rows, cols], and
// the rest (query rows, key positions, geometry, image size) as JSON in the metadata key "sdrpn.maps".
//
//   StudioSession s = window->currentSession();
//   QString error;
//   if (!saveSessionFile(path, s, &error)) report(error);
//   std::optional<StudioSession> back = loadSessionFile(path, &error);
//
// Errors: the functions return false / nullopt and set `error` to a message naming the file and the key.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <QByteArray>
#include <QJsonObject>
#include <QString>

#include "app/ask_session.h"
#include "app/rpn_session.h"
#include "widgets/image_view.h"

struct StudioSession {
    QString imagePath;    // empty for a pasted image
    QByteArray imagePng;  // the pixels of a pasted image (PNG), else empty
    QString question;
    QString answer;     // the baseline answer
    QString roiAnswer;  // the RoI answer of an SD-RPN ask, else empty
    QString modelFolder;
    QString rpnPath;            // the loaded RPN checkpoint; empty for none or the untrained twig
    bool rpnUntrained = false;  // the untrained twig of the model (twiginit)
    QJsonObject labelSettings;  // sdrpn::LabelSettings::toJson; empty: the defaults
    QJsonObject roiSettings;    // sdrpn::RoiSettings::toJson; empty: the defaults
    bool hasView = false;       // false: fit the image
    ImageViewState view;
    // The attention selection: layer slot, heads, query choice; -1: the defaults. The heads are one of:
    // `head` >= 0 (one head), `heads` (a set, averaged), `groundingHeads` (the label settings' grounding
    // heads of the viewed layer), else the mean of heads.
    int layerSlot = -1;
    int head = -1;
    std::vector<int> heads;
    bool groundingHeads = false;
    int query = -1;
    int answerToken = -1;  // the answer token of the one-answer-token query; -1: the default
    // The maps of the answer and of its RoI (not in the JSON: the sidecar). Null when there are none.
    std::shared_ptr<const QuestionResult> maps;
    std::shared_ptr<const TwoStageAnswer> roi;
};

inline constexpr const char* kSessionFormat = "sdrpn-studio-session";
inline constexpr int kSessionVersion = 2;

// "<folder>/name.sdrpn.json" → "<folder>/name.sdrpn.maps.safetensors".
QString sessionMapsPath(const QString& sessionPath);
// The sidecar alone (false / nullopt with `error` naming the file and the key or tensor at fault).
bool saveSessionMaps(const QString& path, const QuestionResult* maps, const TwoStageAnswer* roi,
                     QString* error);
struct SessionMaps {
    std::shared_ptr<const QuestionResult> maps;
    std::shared_ptr<const TwoStageAnswer> roi;
};
std::optional<SessionMaps> loadSessionMaps(const QString& path, QString* error);

QJsonObject sessionToJson(const StudioSession& session);
// `baseDir` resolves relative paths; `error` names the key at fault.
std::optional<StudioSession> sessionFromJson(const QJsonObject& json, const QString& baseDir, QString* error);

// Writes the JSON and, when the session has maps or a RoI, the sidecar (removing a stale one otherwise).
bool saveSessionFile(const QString& path, const StudioSession& session, QString* error);
// Reads the JSON and the sidecar it names.
std::optional<StudioSession> loadSessionFile(const QString& path, QString* error);
