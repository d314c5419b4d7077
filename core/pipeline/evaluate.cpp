#include "core/pipeline/evaluate.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/io/image.h"
#include "core/pipeline/two_stage.h"

namespace sdrpn::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> referencesOf(const data::Sample& s) {
    if (!s.answers.empty()) return s.answers;
    if (s.answer) return {*s.answer};
    return {};
}

models::GenerationOptions generation(const EvalOptions& options) {
    models::GenerationOptions g;
    g.maxNewTokens = options.maxNewTokens;
    g.keepStepLogits = false;  // scoring needs the text only
    return g;
}

nlohmann::json boxJson(const std::array<double, 4>& b) {
    return nlohmann::json::array({b[0], b[1], b[2], b[3]});
}

nlohmann::json scoreJson(const AnswerScore& s) {
    return {{"rule", scoreRuleName(s.rule)},
            {"score", s.score},
            {"normalized", s.normalized},
            {"reference", s.reference}};
}

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

// A table cell: no pipes or line breaks.
std::string cell(const std::string& text, std::size_t maxChars = 60) {
    std::string out;
    for (char c : text) {
        if (c == '|')
            out += "\\|";
        else if (c == '\n' || c == '\r' || c == '\t')
            out += ' ';
        else
            out += c;
    }
    if (out.size() > maxChars) {
        std::size_t cut = maxChars;
        // Do not cut a UTF-8 sequence in half.
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out = out.substr(0, cut) + "…";
    }
    return out;
}

void writeText(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    if (!out) throw Error(path + ": cannot open for writing");
    out << text;
    out.close();
    if (!out) throw Error(path + ": write failed");
}

}  // namespace

EvalSummary summarize(const std::string& datasetId, const std::vector<EvalRow>& rows,
                      const std::vector<EvalSkipped>& skipped) {
    EvalSummary s;
    s.dataset = datasetId;
    s.count = std::int64_t(rows.size());
    s.skipped = std::int64_t(skipped.size());
    double baselineSum = 0, sdrpnSum = 0, iouSum = 0;
    for (const auto& r : rows) {
        if (r.scored()) {
            ++s.scored;
            baselineSum += r.baselineScore.score;
            sdrpnSum += r.sdrpnScore.score;
        }
        if (r.iou) {
            ++s.boxCount;
            iouSum += *r.iou;
        }
        if (r.zoomed()) ++s.zoomed;
        s.baselineSeconds += r.baselineSeconds;
        s.sdrpnSeconds += r.sdrpnSeconds;
    }
    if (s.scored > 0) {
        s.baselineAccuracy = baselineSum / double(s.scored);
        s.sdrpnAccuracy = sdrpnSum / double(s.scored);
    }
    if (s.boxCount > 0) s.meanIou = iouSum / double(s.boxCount);
    if (s.count > 0) {
        s.baselineSecondsPerSample = s.baselineSeconds / double(s.count);
        s.sdrpnSecondsPerSample = s.sdrpnSeconds / double(s.count);
    }
    if (s.sdrpnSeconds > 0) s.throughputRatio = s.baselineSeconds / s.sdrpnSeconds;
    return s;
}

EvalReport evaluate(const LoadedModel& model, const Rpn& rpn, const data::Dataset& dataset,
                    const EvalOptions& options, JobContext& job, const EvalSampleCallback& onSample) {
    EvalReport report;
    report.options = options;
    for (const auto& e : dataset.skipped) report.skipped.push_back({e.key, e.image, e.reason});

    const std::int64_t total = std::int64_t(dataset.samples.size());
    std::int64_t done = 0;
    job.report(0, total, "evaluating");
    try {
        for (const data::Sample& sample : dataset.samples) {
            if (job.cancelRequested()) {
                report.status = Status::cancelledStatus();
                break;
            }
            auto image = guarded([&] { return io::loadImage(sample.imagePath); });
            if (!image) {
                report.skipped.push_back({sample.key, sample.imagePath, image.message()});
                ++done;
                if (onSample) onSample(nullptr, done, total, sample.key);
                job.report(done, total, sample.key);
                continue;
            }
            const io::ImageRgb8& img = image.value();
            // The answers run under their own context: their per-token progress would read as the
            // evaluation's. A cancel of `job` reaches them at their next progress report.
            JobContext inner;
            inner.onProgress = [&](const Progress&) {
                if (job.cancelRequested()) inner.requestCancel();
            };

            EvalRow row;
            row.key = sample.key;
            row.image = sample.imagePath;
            row.question = sample.question + options.postPrompt;
            row.references = referencesOf(sample);
            row.bbox = sample.bbox;

            AskOptions ask;
            ask.question = row.question;
            ask.chatTemplate = options.chatTemplate;
            ask.imageMode = options.imageMode;
            ask.generation = generation(options);
            ask.capture = models::CaptureRequest::none();
            auto start = Clock::now();
            auto baseline = pipeline::ask(model, img, ask, inner);
            row.baselineSeconds = secondsSince(start);
            if (baseline.status().cancelled()) {
                report.status = baseline.status();
                break;
            }
            if (!baseline) {
                report.status = Status::failed("sample " + sample.key + " (" + sample.imagePath +
                                               "), baseline: " + baseline.message());
                break;
            }
            row.baselineAnswer = baseline.value().answer;

            TwoStageOptions two;
            two.question = row.question;
            two.chatTemplate = options.chatTemplate;
            two.imageMode = options.imageMode;
            two.generation = generation(options);
            two.roi = options.roi;
            two.baseline = false;
            two.reuseKv = options.reuseKv;
            start = Clock::now();
            if (job.cancelRequested()) inner.requestCancel();
            auto sdrpn = answerTwoStage(model, rpn, img, two, inner);
            row.sdrpnSeconds = secondsSince(start);
            if (sdrpn.status().cancelled()) {
                report.status = sdrpn.status();
                break;
            }
            if (!sdrpn) {
                report.status = Status::failed("sample " + sample.key + " (" + sample.imagePath +
                                               "), SD-RPN: " + sdrpn.message());
                break;
            }
            const TwoStageResult& r = sdrpn.value();
            row.sdrpnAnswer = r.roiAnswer.text;
            row.branch = r.roi.branch;
            row.roiReason = r.roi.zoom() ? std::string() : r.roi.reason;
            row.roiTokens = r.roiTokens;
            // No zoom: the answer saw the whole image, so that is the box it is judged by.
            if (r.roi.zoom())
                row.roiBox = {double(r.cropBox.x0), double(r.cropBox.y0), double(r.cropBox.x1),
                              double(r.cropBox.y1)};
            else
                row.roiBox = {0.0, 0.0, double(img.width), double(img.height)};
            if (row.bbox) row.iou = boxIou(row.roiBox, *row.bbox);

            row.baselineScore = scoreAnswer(sample.question, row.baselineAnswer, row.references);
            row.sdrpnScore = scoreAnswer(sample.question, row.sdrpnAnswer, row.references);

            report.rows.push_back(std::move(row));
            ++done;
            if (onSample) onSample(&report.rows.back(), done, total, sample.key);
            job.report(done, total, sample.key);
        }
    } catch (...) {
        // The callbacks or the model threw past their own edges.
        report.status = statusFromCurrentException();
    }
    report.summary = summarize(dataset.id, report.rows, report.skipped);
    return report;
}

std::string evalReportJson(const EvalReport& report) {
    const EvalSummary& s = report.summary;
    nlohmann::json j;
    j["status"] = statusCodeName(report.status.code);
    if (!report.status.ok()) j["message"] = report.status.message;
    j["summary"] = {
        {"dataset", s.dataset},
        {"count", s.count},
        {"scored", s.scored},
        {"baseline_accuracy", s.baselineAccuracy},
        {"sdrpn_accuracy", s.sdrpnAccuracy},
        {"box_count", s.boxCount},
        {"mean_iou", s.meanIou},
        {"zoomed", s.zoomed},
        {"baseline_seconds", s.baselineSeconds},
        {"sdrpn_seconds", s.sdrpnSeconds},
        {"baseline_seconds_per_sample", s.baselineSecondsPerSample},
        {"sdrpn_seconds_per_sample", s.sdrpnSecondsPerSample},
        {"throughput_ratio", s.throughputRatio},
        {"skipped", s.skipped},
    };
    const EvalOptions& o = report.options;
    j["options"] = {{"post_prompt", o.postPrompt},    {"max_new_tokens", o.maxNewTokens},
                    {"template", o.chatTemplate},     {"image_mode", o.imageMode},
                    {"roi_settings", o.roi.toJson()}, {"reuse_kv", o.reuseKv}};
    nlohmann::json samples = nlohmann::json::array();
    for (const auto& r : report.rows) {
        nlohmann::json row = {
            {"key", r.key},
            {"image", r.image},
            {"question", r.question},
            {"references", r.references},
            {"baseline", {{"answer", r.baselineAnswer}, {"seconds", r.baselineSeconds}}},
            {"sdrpn",
             {{"answer", r.sdrpnAnswer},
              {"seconds", r.sdrpnSeconds},
              {"branch", roiBranchName(r.branch)},
              {"roi_box", boxJson(r.roiBox)},
              {"roi_tokens", r.roiTokens}}},
        };
        if (r.scored()) {
            row["baseline"]["score"] = scoreJson(r.baselineScore);
            row["sdrpn"]["score"] = scoreJson(r.sdrpnScore);
        }
        if (!r.roiReason.empty()) row["sdrpn"]["reason"] = r.roiReason;
        if (r.bbox) row["bbox"] = boxJson(*r.bbox);
        if (r.iou) row["iou"] = *r.iou;
        samples.push_back(std::move(row));
    }
    j["samples"] = std::move(samples);
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& e : report.skipped)
        skipped.push_back({{"key", e.key}, {"image", e.image}, {"reason", e.reason}});
    j["skipped"] = std::move(skipped);
    // Model answers may hold broken UTF-8 (a random model, a token cut in half): replace, never throw.
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string evalReportMarkdown(const EvalReport& report, bool perSample) {
    const EvalSummary& s = report.summary;
    auto accuracy = [&](double a) { return s.scored > 0 ? format("%.1f", 100.0 * a) : std::string("–"); };
    std::ostringstream md;
    md << "| method | accuracy (%) | scored | s/sample | throughput |\n";
    md << "|---|---:|---:|---:|---:|\n";
    md << "| baseline | " << accuracy(s.baselineAccuracy) << " | " << s.scored << " | "
       << format("%.3f", s.baselineSecondsPerSample) << " | 1.00× |\n";
    md << "| SD-RPN | " << accuracy(s.sdrpnAccuracy) << " | " << s.scored << " | "
       << format("%.3f", s.sdrpnSecondsPerSample) << " | " << format("%.2f", s.throughputRatio) << "× |\n";
    md << "\n"
       << s.dataset << ": " << s.count << " samples (" << s.scored << " scored), " << s.skipped
       << " skipped; SD-RPN zoomed in on " << s.zoomed << "; ";
    if (s.boxCount > 0)
        md << "RoI IoU " << format("%.3f", s.meanIou) << " (mean over " << s.boxCount
           << " samples with a box)";
    else
        md << "no ground-truth boxes";
    md << ".\n";
    if (report.status.cancelled()) md << "\nInterrupted: the figures cover the samples finished before.\n";
    if (!report.status.ok() && !report.status.cancelled())
        md << "\nStopped by a failure: " << cell(report.status.message, 300) << "\n";
    if (!perSample) return md.str();

    md << "\n| key | reference | baseline | score | SD-RPN | score | branch | IoU |\n";
    md << "|---|---|---|---:|---|---:|---|---:|\n";
    for (const auto& r : report.rows) {
        std::string refs;
        for (std::size_t i = 0; i < r.references.size() && i < 3; ++i)
            refs += (i ? " / " : "") + r.references[i];
        if (r.references.size() > 3) refs += " / …";
        auto score = [&](const AnswerScore& a) {
            return r.scored() ? format("%.2f", a.score) : std::string("–");
        };
        md << "| " << cell(r.key, 40) << " | " << cell(refs) << " | " << cell(r.baselineAnswer) << " | "
           << score(r.baselineScore) << " | " << cell(r.sdrpnAnswer) << " | " << score(r.sdrpnScore) << " | "
           << roiBranchName(r.branch) << " | " << (r.iou ? format("%.3f", *r.iou) : std::string("–"))
           << " |\n";
    }
    if (!report.skipped.empty()) {
        md << "\nSkipped:\n\n";
        for (const auto& e : report.skipped)
            md << "- " << cell(e.key, 80) << " (" << cell(e.image, 200) << "): " << cell(e.reason, 300)
               << "\n";
    }
    return md.str();
}

void writeEvalJson(const std::string& path, const EvalReport& report) {
    writeText(path, evalReportJson(report));
}

void writeEvalMarkdown(const std::string& path, const EvalReport& report, bool perSample) {
    writeText(path, evalReportMarkdown(report, perSample));
}

}  // namespace sdrpn::pipeline
