// RpnSession: the studio's SD-RPN region proposal network and its two-stage answers.
//
// The RPN belongs to the loaded model (its twig layers read that backbone's hidden state): load() reads an
// SD-RPN checkpoint (a folder, or a .safetensors written by `sdrpn train`) with sdrpn::loadRpn, and
// initFromModel() builds an untrained twig from the backbone's own layers ("twiginit", sdrpn.md §3.4). Both
// run as JobManager jobs. ask() runs sdrpn::pipeline::answerTwoStage with the baseline as a job: the
// baseline and RoI answers stream through baselineText() / roiText(), then answered() with the result (both
// answers, time per stage, the RoI logits and their post-processing, plain data).
//
//   auto* rpn = new RpnSession(jobs, this);
//   rpn->initFromModel(modelSession->pipelineModel());           // or rpn->load(model, "/ckpt/folder")
//   connect(rpn, &RpnSession::answered, this, [&] { show(rpn->result()); });
//   rpn->ask(model, image, request, sdrpn::RoiSettings::fromPreset("textvqa_val"));
//
// Failures (a file that is no checkpoint, a model without a LLaMA decoder, no image) come back as
// loadFailed() / failed() with a message naming the culprit; nothing throws. Exactly one of answered(),
// failed() or stopped() ends every ask() that started (none for one superseded by a newer ask()).
//
// Thread affinity: GUI thread; loading and answering run on JobManager workers.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <QImage>
#include <QObject>
#include <QSize>
#include <QString>

#include "app/ask_session.h"
#include "app/job_manager.h"
#include "core/models/geometry.h"
#include "core/sdrpn/roi.h"

namespace sdrpn {
class Rpn;
}
namespace sdrpn::pipeline {
struct LoadedModel;
}

// Seconds per stage of a two-stage answer (a copy of the core's TwoStageTimings).
struct TwoStageTimes {
    double preprocess = 0, vision = 0, pass1 = 0, rpn = 0, postprocess = 0, cropEncode = 0, pass2 = 0,
           decode = 0, baselineDecode = 0;
    double total() const {
        return preprocess + vision + pass1 + rpn + postprocess + cropEncode + pass2 + decode + baselineDecode;
    }
};

// "vision 41 ms · pass 1 120 ms · RPN 3 ms · crop encode 40 ms · pass 2 90 ms · decode 0.85 s ..."
QString describeTwoStageTimes(const TwoStageTimes& times);

// One two-stage answer, plain data.
struct TwoStageAnswer {
    QString question;
    QString baselineAnswer;
    QString roiAnswer;
    bool roiAnswerIsBaseline = false;  // no zoom: the RoI answer is the baseline's
    QSize imageSize;
    sdrpn::models::GridGeometry geometry;
    int rows = 0, cols = 0;
    std::vector<float> roiLogits;    // the RPN's logits over the grid, row-major
    sdrpn::RoiSettings roiSettings;  // what the job post-processed with
    sdrpn::RoiResult roi;            // the job's post-processing
    int roiTokens = 0;               // RoI tokens inserted in pass 2
    // Qwen2.5-VL's post-processing (sdrpn.md §4.7: mask style, crop at its own grid), else LLaVA's (§4.2).
    bool qwenRoi = false;
    sdrpn::models::ImageGrid cropGrid;  // Qwen: the crop's token grid
    bool kvReused = false;
    TwoStageTimes times;
    // The baseline answer with its attention (last prompt token, question and answer rows, every layer), as
    // a plain ask gives it: what the raw and denoised views show for an SD-RPN answer.
    std::shared_ptr<const QuestionResult> baselineResult;
};

class RpnSession : public QObject {
    Q_OBJECT
public:
    enum class State { Empty, Loading, Ready, Failed };
    Q_ENUM(State)

    explicit RpnSession(JobManager* jobs, QObject* parent = nullptr);
    ~RpnSession() override;

    State state() const { return m_state; }
    bool hasRpn() const { return m_rpn != nullptr; }
    // The loaded RPN, shared read-only (nullptr when none); jobs keep it alive while they run.
    std::shared_ptr<const sdrpn::Rpn> rpn() const { return m_rpn; }
    // What is loaded, in words ("checkpoint llava-…-filled · K15 T3", "untrained twig (twiginit) · K3 T3").
    QString description() const { return m_description; }
    QString errorMessage() const { return m_error; }
    // Where the loaded RPN came from: the checkpoint path given to load() (empty for none or the untrained
    // twig), and whether it is the untrained twig of initFromModel().
    QString sourcePath() const { return m_path; }
    bool isUntrained() const { return m_untrained; }
    // The model the RPN was built for (nullptr when none).
    const sdrpn::pipeline::LoadedModel* model() const { return m_model.get(); }

    // Loads an SD-RPN checkpoint for `model` (a folder, a config.json or a .safetensors); returns the job
    // id, 0 when nothing started (loadFailed() says why).
    JobId load(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QString& path);
    // An untrained twig from the backbone's own layers K .. K+T-1; K and T of 0 pick K = min(15, layers / 2),
    // T = min(3, layers − K). A K + T beyond the decoder is a loadFailed() naming both.
    JobId initFromModel(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, int K = 0, int T = 0);
    // Drops the RPN (e.g. the model changed); a load under way is cancelled.
    void clear();

    // Answers `request.question` about `image` with the baseline and the RoI crop; returns the job id (0
    // when nothing started: failed() says why).
    JobId ask(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QImage& image,
              const AskRequest& request, const sdrpn::RoiSettings& roi);
    bool isRunning() const { return m_askJob != 0; }
    std::shared_ptr<const TwoStageAnswer> result() const { return m_result; }

public slots:
    void stop();
    void clearResult();

signals:
    void stateChanged(RpnSession::State state);
    void loaded(const QString& description);
    void loadFailed(const QString& message);
    void started(const QString& question);
    void baselineText(const QString& piece);
    void roiText(const QString& piece);
    void answered();
    void failed(const QString& message);
    void stopped();
    void runningChanged(bool running);

private:
    struct Relay;
    struct Loaded;
    JobId startLoad(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QString& title,
                    std::function<sdrpn::Result<std::shared_ptr<const Loaded>>(sdrpn::JobContext&)> work);
    void setState(State state);
    void onText(quint64 request, bool roi, const QString& piece);

    JobManager* m_jobs;
    State m_state = State::Empty;
    std::shared_ptr<const sdrpn::pipeline::LoadedModel> m_model;
    std::shared_ptr<const sdrpn::Rpn> m_rpn;
    QString m_description;
    QString m_error;
    QString m_path, m_loadingPath;
    bool m_untrained = false, m_loadingUntrained = false;
    JobId m_loadJob = 0;
    quint64 m_loadRequest = 0;
    JobId m_askJob = 0;
    quint64 m_askRequest = 0;
    std::shared_ptr<const TwoStageAnswer> m_result;
    std::shared_ptr<Relay> m_relay;
};
