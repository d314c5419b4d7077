// PipelineTeacher: the labeling job's Teacher backed by a loaded model and pipeline::ask (sdrpn.md §2.2:
// greedy, up to 128 new tokens, the fed-back answer tokens captured).
//
//   auto model = pipeline::loadModel(dir, {}, job);
//   PipelineTeacher teacher(model.value());                 // the model's own chat template and image mode
//   runLabeling(dataset, store, teacher, options, job);
//
// Header-only on purpose: sdrpn_pipeline links sdrpn_data, so the data library itself must not call into
// the pipeline; the caller's translation unit (CLI, studio, tests) does. The model is shared read-only;
// each answer() keeps its state in its own context.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/data/labeling.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/prompt.h"

namespace sdrpn::data {

class PipelineTeacher final : public Teacher {
public:
    // `base` supplies the chat template, image mode and generation settings; its question and capture
    // request are replaced per sample. `modelId` "" = the model folder's name.
    explicit PipelineTeacher(std::shared_ptr<const pipeline::LoadedModel> model,
                             pipeline::AskOptions base = defaultOptions(), std::string modelId = {})
        : m_model(std::move(model)), m_base(std::move(base)), m_modelId(std::move(modelId)) {
        if (m_modelId.empty())
            m_modelId = std::filesystem::path(m_model->folder).lexically_normal().filename().string();
        if (m_modelId.empty())  // a folder given with a trailing slash
            m_modelId =
                std::filesystem::path(m_model->folder).lexically_normal().parent_path().filename().string();
    }

    // Greedy, at most 128 new tokens, no step logits kept.
    static pipeline::AskOptions defaultOptions() {
        pipeline::AskOptions o;
        o.generation.maxNewTokens = 128;
        o.generation.sample = false;
        o.generation.keepStepLogits = false;
        return o;
    }

    std::string modelId() const override { return m_modelId; }
    int layerCount() const override { return m_model->backbone->layerCount(); }
    int headCount() const override { return m_model->backbone->headCount(); }

    TeacherAnswer answer(const io::ImageRgb8& image, const std::string& question,
                         const std::vector<int>& layers, JobContext& job) const override {
        pipeline::AskOptions options = m_base;
        options.question = question;
        options.rawPrompt.clear();
        if (m_model->family == pipeline::ModelFamily::Qwen2_5Vl && options.imageMode.empty()) {
            // Qwen labels are made on a padded square at a fixed 24 × 24 grid (sdrpn.md §2.6).
            options.imageMode = pipeline::kQwenLabelImageMode;
            options.maxPixels = pipeline::kQwenLabelPixels;
            options.fixedPixels = true;
        }
        options.capture = models::CaptureRequest{};
        options.capture.layers = layers;
        options.capture.lastPromptToken = false;
        options.capture.questionTokens = false;
        options.capture.answerTokens = true;
        Result<pipeline::AskResult> r = pipeline::ask(*m_model, image, options, job);
        if (r.status().cancelled()) throw CancelledError();
        if (!r) throw Error(r.message());
        TeacherAnswer out;
        out.answer = std::move(r.value().answer);
        out.maps = std::move(r.value().maps);
        out.geometry = r.value().geometry;
        return out;
    }

private:
    std::shared_ptr<const pipeline::LoadedModel> m_model;
    pipeline::AskOptions m_base;
    std::string m_modelId;
};

}  // namespace sdrpn::data
