// ModelSession: owns "the current model" of the studio and the job that loads it.
//
// Loading is one JobManager job in two steps, with progress and cancel throughout: inspect the folder
// (sdrpn::inspectModel: config + safetensors headers, the model card), then load it for answering
// (sdrpn::pipeline::loadModel: backbone weights, tokenizer, preprocessing). The result, SessionModel, is
// shared read-only with answer jobs (AskSession), which call sdrpn::pipeline::ask with pipeline().
// canAnswer() is true once it is loaded.
//
//   auto* session = new ModelSession(jobs, this);
//   connect(session, &ModelSession::loaded, this, [&] { show(session->card()); });
//   connect(session, &ModelSession::loadFailed, this, [&](QString folder, QString msg) { error(msg); });
//   session->load("/models/llava-1.5-7b-hf");   // cancels a load already under way
//
// Thread affinity: GUI thread. The load itself runs on a JobManager worker.
#pragma once

#include <memory>
#include <optional>

#include <QMap>
#include <QObject>
#include <QString>
#include <QStringList>

#include "app/job_manager.h"
#include "core/models/load_options.h"
#include "core/pipeline/model_card.h"
#include "widgets/model_card_panel.h"

namespace sdrpn::pipeline {
struct LoadedModel;
}

// What the loaded backbone reports about itself (plain copy of models::BackboneInfo and friends).
struct LoadedModelInfo {
    std::string modelType;
    std::string device;        // "cpu", "cuda:0"
    std::string computeDType;  // "fp32", "bf16", ...
    int layers = 0, heads = 0, kvHeads = 0, headDim = 0, hidden = 0;
    std::int64_t vocab = 0;
    std::int64_t imageTokens = 0;
    int gridRows = 0, gridCols = 0;
    int imageSize = 0;
    std::string imageFit;          // "pad", "crop", "resize" (Qwen2.5-VL)
    std::string tokenizerProblem;  // why asking is impossible (the folder has no tokenizer); "" otherwise
    std::string chatTemplate;      // the default template's name
    double loadSeconds = 0.0;
};

// What one load produces; shared read-only with jobs once loaded.
struct SessionModel {
    sdrpn::ModelCard card;
    std::shared_ptr<const sdrpn::pipeline::LoadedModel> pipeline;  // backbone, tokenizer (later: RPN)
    LoadedModelInfo info;
    std::string visionTower;  // original LLaVA layout: the CLIP folder it was loaded with
    std::string baseModel;    // unfilled SD-RPN checkpoint: the base model that filled it
};

// An original-layout LLaVA folder whose CLIP vision tower was not found (plain data from its ModelCard):
// what the studio asks the user for.
struct VisionTowerRequest {
    QString modelFolder;
    QString towerName;  // the config's mm_vision_tower ("openai/clip-vit-large-patch14-336")
    QStringList tried;  // the folders looked at
    // "llava-v1.5-7b needs its CLIP vision tower 'openai/clip-…' (mm_vision_tower), which is not in …"
    QString message() const;
};

// An unfilled SD-RPN checkpoint (card.needsBase: only the backbone layers the twig needs, no final norm
// or lm_head) opened with no base model: what the studio asks the user for.
struct BaseModelRequest {
    QString modelFolder;
    int twigK = 0, twigT = 0;
    // "llava-13b-roi is an unfilled SD-RPN checkpoint: … Choose its base model …"
    QString message() const;
};

// Where the studio loads models by default: the first CUDA device in bf16 when there is one, else the CPU
// in fp32.
sdrpn::models::LoadOptions defaultStudioLoadOptions();

// The body of the load job (worker thread): inspect, then load the weights. Never throws; the failed
// Result's message names the folder or file at fault. An original-layout LLaVA folder whose CLIP tower is
// not found (card.visionTowerMissing()) and `options` names none gives the card alone (pipeline null); so
// does an unfilled SD-RPN checkpoint (card.needsBase) when `options.base` is empty.
sdrpn::Result<SessionModel> loadModelFolder(const std::string& folder,
                                            const sdrpn::models::LoadOptions& options,
                                            sdrpn::JobContext& ctx);

// Turns a ModelCard into what ModelCardPanel shows.
ModelCardInfo describeModelCard(const sdrpn::ModelCard& card);
// The card plus what the loaded backbone reports (compute device and dtype, vocabulary, image tokens,
// image fit, load time).
ModelCardInfo describeModel(const SessionModel& model);
// The resident memory of this process (/proc/self/statm; 0 where it cannot be read): what the card shows
// as the memory in use, the weights included.
std::int64_t processResidentBytes();
// The devices the studio can load on: "cpu", and "cuda" when LibTorch sees a CUDA device.
QStringList availableLoadDevices();

class ModelSession : public QObject {
    Q_OBJECT
public:
    enum class State { Empty, Loading, Ready, Failed };
    Q_ENUM(State)

    explicit ModelSession(JobManager* jobs, QObject* parent = nullptr);

    State state() const { return m_state; }
    // The folder being loaded, loaded or that failed; empty when Empty.
    QString folder() const { return m_folder; }
    // The loaded model's card; nullptr unless Ready. Jobs that need the model take model() (shared).
    const sdrpn::ModelCard* card() const { return m_model ? &m_model->card : nullptr; }
    std::shared_ptr<const SessionModel> model() const { return m_model; }
    // The loaded model for answer jobs; nullptr unless Ready.
    std::shared_ptr<const sdrpn::pipeline::LoadedModel> pipelineModel() const {
        return m_model ? m_model->pipeline : nullptr;
    }
    // The CLIP folder to load the original-layout LLaVA `folder` with (empty: none set); load() uses it
    // instead of loadOptions().visionTower. Not a folder with a config.json: forgotten at the next load().
    void setVisionTower(const QString& folder, const QString& tower);
    QString visionTower(const QString& folder) const;
    // The last load stopped because the CLIP folder was not found (visionTowerNeeded() was emitted).
    bool isWaitingForVisionTower() const { return m_towerRequest.has_value(); }
    // No CLIP folder will be given: the load fails (loadFailed() with the request's message and `reason`,
    // by default that none was chosen).
    void declineVisionTower(const QString& reason = {});

    // The base model that fills the unfilled SD-RPN checkpoint `folder` (empty: none); load() passes it
    // as LoadOptions::base. Not a folder with a config.json: forgotten at the next load().
    void setBaseModel(const QString& folder, const QString& base);
    QString baseModel(const QString& folder) const;
    // The last load stopped because the checkpoint needs a base model (baseModelNeeded() was emitted).
    bool isWaitingForBaseModel() const { return m_baseRequest.has_value(); }
    // No base model will be given: the load fails (loadFailed() with the request's message and `reason`).
    void declineBaseModel(const QString& reason = {});

    // Options for the next load() (device, compute dtype); defaultStudioLoadOptions() until set.
    void setLoadOptions(const sdrpn::models::LoadOptions& options) { m_options = options; }
    const sdrpn::models::LoadOptions& loadOptions() const { return m_options; }
    QString errorMessage() const { return m_error; }
    JobId loadJob() const { return m_loadJob; }
    bool isDemoModel() const { return m_model && m_model->card.randomWeights; }

    // Whether Ask can run now; when not, `reason` says why in words for a tooltip.
    bool canAnswer(QString* reason = nullptr) const;

public slots:
    // Starts loading `folder` and returns the job id. A load in progress is cancelled first, and the
    // current model is released (two large models rarely fit in memory together).
    JobId load(const QString& folder);
    void cancelLoad();
    void unload();

signals:
    void stateChanged(ModelSession::State state);
    void loadStarted(const QString& folder);
    void loadProgress(double fraction, const QString& message);  // fraction -1: unknown
    void loaded(const QString& folder);
    void loadFailed(const QString& folder, const QString& message);
    void loadCancelled(const QString& folder);
    // The model is an original-layout LLaVA and its CLIP vision tower was not found (state Failed): load
    // again after setVisionTower(), or declineVisionTower().
    void visionTowerNeeded(const VisionTowerRequest& request);
    // The model is an unfilled SD-RPN checkpoint and no base model is set (state Failed): load again after
    // setBaseModel(), or declineBaseModel().
    void baseModelNeeded(const BaseModelRequest& request);
    void answerAvailabilityChanged();

private:
    void setState(State state);

    JobManager* m_jobs;
    State m_state = State::Empty;
    QString m_folder;
    QString m_error;
    JobId m_loadJob = 0;
    quint64 m_request = 0;  // identifies the latest load() call
    std::shared_ptr<const SessionModel> m_model;
    sdrpn::models::LoadOptions m_options;
    QMap<QString, QString> m_visionTowers;  // model folder → CLIP folder
    std::optional<VisionTowerRequest> m_towerRequest;
    QMap<QString, QString> m_baseModels;  // checkpoint folder → base model folder
    std::optional<BaseModelRequest> m_baseRequest;
};
