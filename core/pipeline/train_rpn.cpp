#include "core/pipeline/train_rpn.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "core/data/label_store.h"
#include "core/data/labeling.h"
#include "core/dist/collectives.h"
#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/clip_image_processor.h"
#include "core/models/decoder_backbone.h"
#include "core/pipeline/prompt.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdrpn::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kPi = 3.14159265358979323846;
constexpr std::size_t kSkippedReasonsKept = 20;
constexpr const char* kCheckpointPrefix = "checkpoint-";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kSupersededSuffix = ".old";
constexpr const char* kMetricsFile = "metrics.jsonl";

double secondsSince(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// bf16 autocast on CUDA for the twig's forward (sdrpn.md §3.5: bf16 training), master weights in fp32.
// LibTorch 2.4 moved the switches to per-device calls; before that there is one switch for CUDA.
class CudaBf16Autocast {
public:
    explicit CudaBf16Autocast(bool enable) : m_enabled(enable) {
        if (!m_enabled) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
        m_wasEnabled = at::autocast::is_autocast_enabled(at::kCUDA);
        m_previousDtype = at::autocast::get_autocast_dtype(at::kCUDA);
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
        m_wasEnabled = at::autocast::is_enabled();
        m_previousDtype = at::autocast::get_autocast_gpu_dtype();
        at::autocast::set_enabled(true);
        at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
        at::autocast::increment_nesting();
    }
    ~CudaBf16Autocast() {
        if (!m_enabled) return;
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
        at::autocast::set_autocast_enabled(at::kCUDA, m_wasEnabled);
        at::autocast::set_autocast_dtype(at::kCUDA, m_previousDtype);
#else
        at::autocast::set_enabled(m_wasEnabled);
        at::autocast::set_autocast_gpu_dtype(m_previousDtype);
#endif
    }
    CudaBf16Autocast(const CudaBf16Autocast&) = delete;
    CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

private:
    bool m_enabled = false;
    bool m_wasEnabled = false;
    at::ScalarType m_previousDtype = at::kBFloat16;
};

// One stored sample that made it into the training set.
struct TrainSample {
    std::string dataset, key;
    std::string image;  // resolved path
    std::string question;
    models::ImageFit fit = models::ImageFit::Pad;  // the fit the labels were made with
    std::vector<float> targets;                    // 1 / 0 / −100 per image token
    bool unusable = false;                         // its image turned out unreadable
};

// hidden[K] of one sample and where its query and image rows are.
struct Encoded {
    torch::Tensor hidden;  // [L, hidden], the backbone's dtype and device
    std::int64_t queryRow = 0, imageStart = 0, imageCount = 0;
    models::RopeTable
        rope;  // Qwen2.5-VL: the M-RoPE cos / sin of rows 0 .. L-1; plain RoPE otherwise (empty)
};

// Image tokens per training sample: the backbone's fixed grid, or Qwen2.5-VL's fixed label budget (24 × 24).
std::int64_t trainingImageTokens(const LoadedModel& model) {
    if (model.family == ModelFamily::Qwen2_5Vl) return kQwenLabelPixels / (28 * 28);
    return model.backbone->info().imageTokens;
}

std::string checkpointName(std::int64_t step) {
    return kCheckpointPrefix + std::to_string(step);
}

// Whole checkpoints (checkpoint-<step> folders with a trainer state) in `outDir`, oldest first.
std::vector<std::pair<std::int64_t, fs::path>> listCheckpoints(const fs::path& outDir) {
    std::vector<std::pair<std::int64_t, fs::path>> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(outDir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_directory() || name.rfind(kCheckpointPrefix, 0) != 0) continue;
        const std::string digits = name.substr(std::string(kCheckpointPrefix).size());
        if (digits.empty() ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;  // checkpoint-<step>.tmp and strangers
        if (!fs::exists(entry.path() / kStateFile)) continue;
        found.emplace_back(std::stoll(digits), entry.path());
    }
    std::sort(found.begin(), found.end());
    return found;
}

json readJson(const fs::path& path) {
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": cannot open");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
    }
}

// Writes `bytes` to `path` through a temporary file and a rename; a failed write (a full disk, a
// read-only folder) throws naming the file and the reason, and leaves `path` as it was.
void writeTextAtomically(const fs::path& path, const std::string& bytes) {
    const fs::path tmp = path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = std::strerror(n < 0 ? errno : ENOSPC);
            ::close(fd);
            std::error_code ec;
            fs::remove(tmp, ec);
            throw Error("cannot write " + tmp.string() + ": " + why);
        }
        done += std::size_t(n);
    }
    if (::close(fd) != 0) {
        const std::string why = std::strerror(errno);
        std::error_code ec;
        fs::remove(tmp, ec);
        throw Error("cannot write " + tmp.string() + ": " + why);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error("cannot write " + path.string() + ": " + ec.message());
}

json optionsJson(const TrainOptions& o, const RpnConfig& rpn) {
    json j;
    j["store"] = o.store;
    j["image_root"] = o.imageRoot;
    j["out_dir"] = o.outDir;
    j["dataset"] = o.dataset;
    j["twig_K"] = rpn.K;
    j["twig_T"] = rpn.T;
    j["roi_multi_head"] = rpn.multiHead;
    j["init_from"] = o.initFrom.empty() ? json("twiginit") : json(o.initFrom);
    j["labels"] = o.labelsFromStore ? json("from the store") : o.labels.toJson();
    j["chat_template"] = o.chatTemplate;
    j["image_mode"] = o.imageMode;
    j["epochs"] = o.epochs;
    j["max_steps"] = o.maxSteps;
    j["limit"] = o.limit;
    j["batch"] = o.batch;
    j["accum"] = o.accum;
    j["lr"] = o.lr;
    j["warmup_ratio"] = o.warmupRatio;
    j["weight_decay"] = o.weightDecay;
    j["beta1"] = o.beta1;
    j["beta2"] = o.beta2;
    j["eps"] = o.eps;
    j["max_grad_norm"] = o.maxGradNorm;
    j["seed"] = o.seed;
    j["bf16_autocast"] = o.bf16Autocast;
    j["save_every"] = o.saveEvery;
    j["keep_checkpoints"] = o.keepCheckpoints;
    j["cache_hidden_mb"] = o.cacheHiddenMb;
    return j;
}

// The sample order of one epoch: a Fisher–Yates shuffle driven by mt19937_64(seed + epoch), written out so
// that the order does not depend on the standard library's std::shuffle.
std::vector<std::int64_t> epochOrder(std::int64_t n, std::uint64_t seed, int epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[std::size_t(i)] = i;
    std::mt19937_64 rng(seed + std::uint64_t(epoch));
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::int64_t j = std::int64_t(rng() % std::uint64_t(i + 1));
        std::swap(order[std::size_t(i)], order[std::size_t(j)]);
    }
    return order;
}

std::string formatLr(double lr) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", lr);
    return buf;
}

// Checks what can be checked before any sample is read; returns the twig's config.
RpnConfig validateOptions(const LoadedModel& model, const TrainOptions& o, bool writer) {
    const models::Backbone& backbone = *model.backbone;
    if (o.batch < 1) throw Error("batch must be at least 1, got " + std::to_string(o.batch));
    if (o.accum < 1) throw Error("accum must be at least 1, got " + std::to_string(o.accum));
    if (o.epochs < 1) throw Error("epochs must be at least 1, got " + std::to_string(o.epochs));
    if (!(o.lr > 0.0) || !std::isfinite(o.lr)) throw Error("lr must be > 0, got " + std::to_string(o.lr));
    if (!(o.warmupRatio >= 0.0 && o.warmupRatio <= 1.0))
        throw Error("warmup ratio must lie in [0, 1], got " + std::to_string(o.warmupRatio));
    if (!(o.weightDecay >= 0.0))
        throw Error("weight decay must be >= 0, got " + std::to_string(o.weightDecay));
    if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
        throw Error("beta1 must lie in [0, 1), got " + std::to_string(o.beta1));
    if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
        throw Error("beta2 must lie in [0, 1), got " + std::to_string(o.beta2));
    if (!(o.eps > 0.0)) throw Error("eps must be > 0, got " + std::to_string(o.eps));
    if (o.maxSteps == 0 || o.maxSteps < -1)
        throw Error("max steps must be at least 1 (or -1: the epochs decide), got " +
                    std::to_string(o.maxSteps));
    if (o.limit == 0 || o.limit < -1)
        throw Error("limit must be at least 1 (or -1: every sample), got " + std::to_string(o.limit));
    if (o.saveEvery < 0) throw Error("save-every must be >= 0, got " + std::to_string(o.saveEvery));
    if (o.keepCheckpoints < 0)
        throw Error("keep-checkpoints must be >= 0, got " + std::to_string(o.keepCheckpoints));
    if (o.cacheHiddenMb < 0)
        throw Error("hidden-state cache must be >= 0 MB, got " + std::to_string(o.cacheHiddenMb));

    if (o.store.empty()) throw Error("no label store given");
    if (!fs::exists(o.store)) throw Error(o.store + ": no such label store");
    if (fs::is_directory(o.store)) throw Error(o.store + ": is a folder, not a label store");
    if (!o.imageRoot.empty() && !fs::is_directory(o.imageRoot))
        throw Error(o.imageRoot + ": the image root is not a folder");
    if (!o.initFrom.empty() && !fs::exists(o.initFrom))
        throw Error(o.initFrom + ": no such SD-RPN checkpoint to initialise from");
    if (!o.resumeFrom.empty() && !fs::is_directory(o.resumeFrom))
        throw Error(o.resumeFrom + ": no such checkpoint folder to resume from");
    if (!o.labelsFromStore) o.labels.validate("label settings");

    RpnConfig rpn = o.rpn;
    if (!o.initFrom.empty())
        rpn = readRpnConfig(o.initFrom);
    else if (o.rpnFromModel)
        rpn = defaultRpnConfig(backbone);
    const int layers = backbone.layerCount();
    if (rpn.K < 1 || rpn.T < 1)
        throw Error("K and T must be at least 1, got K=" + std::to_string(rpn.K) +
                    ", T=" + std::to_string(rpn.T));
    if (rpn.K + rpn.T > layers)
        throw Error("K + T = " + std::to_string(rpn.K) + " + " + std::to_string(rpn.T) + " exceeds the " +
                    std::to_string(layers) + " layers of " + model.folder);
    rpnTextConfig(backbone);  // throws for a backbone without a LLaMA decoder
    const models::BackboneInfo& info = backbone.info();
    if (model.family != ModelFamily::Qwen2_5Vl &&
        (info.grid.cells() <= 0 || info.grid.cells() != info.imageTokens))
        throw Error("SD-RPN needs the image tokens to form a grid; " + model.folder + " has " +
                    std::to_string(info.imageTokens) + " tokens per image");

    // The output folder: created, and writable (by the rank that writes it).
    if (o.outDir.empty()) throw Error("no output folder given");
    if (!writer) return rpn;
    std::error_code ec;
    fs::create_directories(o.outDir, ec);
    if (ec || !fs::is_directory(o.outDir))
        throw Error(o.outDir + ": cannot create the output folder" + (ec ? " (" + ec.message() + ")" : ""));
    const fs::path probe = fs::path(o.outDir) / ".write-test";
    {
        std::ofstream out(probe);
        out << "x";
        if (!out)
            throw Error(o.outDir + ": the output folder is not writable (" + std::strerror(errno) + ")");
    }
    fs::remove(probe, ec);
    return rpn;
}

class Trainer {
public:
    Trainer(const LoadedModel& model, const TrainOptions& options, JobContext& job,
            const TrainCallback& onStep)
        : m_model(model),
          m_backbone(*model.backbone),
          m_o(options),
          m_job(job),
          m_onStep(onStep),
          m_group(options.group),
          m_rank(options.group != nullptr ? options.group->rank() : 0),
          m_world(options.group != nullptr ? options.group->size() : 1),
          m_writer(m_rank == 0) {}

    TrainSummary run() {
        m_t0 = Clock::now();
        m_rpnConfig = validateOptions(m_model, m_o, m_writer);
        m_outDir = fs::path(m_o.outDir);
        m_summary.outDir = m_o.outDir;
        if (m_writer) removeStaleTemporaries();

        // Where to start: a fresh run, or a checkpoint.
        fs::path resumeDir;
        if (!m_o.resumeFrom.empty()) {
            resumeDir = m_o.resumeFrom;
        } else if (m_o.resume) {
            const auto found = listCheckpoints(m_outDir);
            if (found.empty())
                throw Error(m_o.outDir + ": no checkpoint to resume from (checkpoint-<step> with " +
                            kStateFile + ")");
            resumeDir = found.back().second;
        } else {
            const auto found = listCheckpoints(m_outDir);
            if (!found.empty())
                throw Error(m_o.outDir + ": holds " + found.back().second.filename().string() +
                            " of an earlier run; resume it or choose another output folder");
        }
        json state;
        if (!resumeDir.empty()) {
            state = readJson(resumeDir / kStateFile);
            m_rpnConfig = readRpnConfig(resumeDir.string());
            if (m_rpnConfig.K + m_rpnConfig.T > m_backbone.layerCount())
                throw Error(resumeDir.string() + ": K + T exceeds the backbone's layers");
        }

        readSamples();
        if (m_samples.empty()) {
            std::string why = m_o.store + ": no usable sample" +
                              (m_o.dataset.empty() ? std::string() : " in dataset '" + m_o.dataset + "'");
            if (!m_summary.skippedReasons.empty())
                why += " (first: " + m_summary.skippedReasons.front() + ")";
            throw Error(why);
        }
        const std::int64_t n = std::int64_t(m_samples.size());
        if (m_group != nullptr) {
            // Every rank must see the same training set (the same store, image root and options).
            const double all = m_group->allReduceSum({double(n)})[0];
            if (all != double(n) * m_world)
                throw Error(m_group->env().describe() + ": the ranks read different training sets (" +
                            std::to_string(n) + " samples here, " + std::to_string(std::int64_t(all)) +
                            " over all ranks); give every rank the same store, images and options");
        }
        m_microBatch = std::int64_t(m_o.batch) * m_world;
        m_perStep = m_microBatch * m_o.accum;
        m_stepsPerEpoch = (n + m_perStep - 1) / m_perStep;
        m_total = m_stepsPerEpoch * m_o.epochs;
        if (m_o.maxSteps > 0) m_total = std::min(m_total, m_o.maxSteps);

        buildRpn(resumeDir);
        torch::optim::AdamW optimizer(m_rpn->parameters(), torch::optim::AdamWOptions(m_o.lr)
                                                               .betas({m_o.beta1, m_o.beta2})
                                                               .eps(m_o.eps)
                                                               .weight_decay(m_o.weightDecay));
        std::int64_t step = 0;
        if (!resumeDir.empty()) {
            step = restoreState(state, resumeDir, optimizer);
        } else if (m_writer) {
            std::ofstream(m_outDir / kMetricsFile, std::ios::trunc);
        }
        // Every rank starts from rank 0's weights (the same by construction; this makes it so).
        if (m_group != nullptr) dist::broadcastParameters(*m_group, m_rpn->parameters(), 0);
        if (m_writer) writeTrainingArgs();
        m_startStep = step;
        m_job.report(step, m_total,
                     "training: " + std::to_string(n) + " samples, " + std::to_string(m_total) + " steps" +
                         (m_world > 1 ? " on " + std::to_string(m_world) + " ranks" : std::string()));

        std::ofstream metrics;
        if (m_writer) {
            metrics.open(m_outDir / kMetricsFile, std::ios::app);
            if (!metrics) throw Error((m_outDir / kMetricsFile).string() + ": cannot open for writing");
        }
        // With several ranks the cancel travels with each step's statistics, so that all stop together.
        bool cancelled = m_group == nullptr && m_job.cancelRequested();
        while (!cancelled && step < m_total) {
            try {
                const bool agreed = trainStep(step, optimizer, metrics);
                cancelled = m_group != nullptr ? agreed : m_job.cancelRequested();
            } catch (const Error& e) {
                // Another rank died or hangs (a collective failed before this step's update): the weights
                // are those after `step` steps on every rank, so rank 0 keeps them as a checkpoint.
                if (m_group == nullptr || step == 0 || step == m_lastCheckpointStep) throw;
                writeCheckpoint(step, optimizer);
                throw Error(std::string(e.what()) + "; " +
                            (m_writer ? "wrote " + m_summary.lastCheckpoint
                                      : "rank 0 keeps step " + std::to_string(step)) +
                            ", resume with --resume (any number of ranks, the same batch x ranks)");
            }
            ++step;
            if (m_o.saveEvery > 0 && step % m_o.saveEvery == 0 && step < m_total)
                writeCheckpoint(step, optimizer);
        }

        m_summary.steps = step;
        if (step > 0 && step != m_lastCheckpointStep) writeCheckpoint(step, optimizer);
        if (!m_losses.empty()) {
            m_summary.firstLoss = m_losses.front();
            m_summary.lastLoss = m_losses.back();
        }
        std::int64_t unusable = 0;
        for (const auto& s : m_samples) unusable += s.unusable ? 1 : 0;
        m_summary.samplesUsed = n - unusable;
        if (cancelled) {
            m_summary.status =
                Status::cancelledStatus(step > 0 ? "cancelled after step " + std::to_string(step) +
                                                       "; resume from " + m_summary.lastCheckpoint
                                                 : "cancelled before the first step");
        } else {
            if (m_writer) saveRpn(m_rpn, m_o.outDir);
            m_summary.status = Status::success();
        }
        m_summary.seconds = secondsSince(m_t0);
        m_job.report(step, m_total, cancelled ? "training cancelled" : "training done");
        return m_summary;
    }

private:
    void skip(const std::string& key, const std::string& reason) {
        ++m_summary.skipped;
        if (m_summary.skippedReasons.size() < kSkippedReasonsKept)
            m_summary.skippedReasons.push_back(key + ": " + reason);
    }

    // Unfinished checkpoint-<step>.tmp folders go. A checkpoint-<step>.old is the earlier copy of a step
    // that was being written again: it goes when the new copy is whole, and is put back otherwise.
    void removeStaleTemporaries() {
        std::error_code ec;
        std::vector<fs::path> stale, superseded;
        for (const auto& entry : fs::directory_iterator(m_outDir, ec)) {
            const std::string name = entry.path().filename().string();
            if (name.rfind(kCheckpointPrefix, 0) != 0) continue;
            if (entry.path().extension() == ".tmp") stale.push_back(entry.path());
            if (entry.path().extension() == kSupersededSuffix) superseded.push_back(entry.path());
        }
        for (const fs::path& p : stale) fs::remove_all(p, ec);
        for (const fs::path& p : superseded) {
            fs::path whole = p;
            whole.replace_extension();
            if (fs::exists(whole / kStateFile)) {
                fs::remove_all(p, ec);
                continue;
            }
            fs::remove_all(whole, ec);
            ec.clear();
            fs::rename(p, whole, ec);
            if (ec)
                throw Error("cannot restore " + whole.string() + " from " + p.string() + ": " + ec.message());
        }
    }

    std::string resolveImage(const std::string& image) const {
        if (m_o.imageRoot.empty() || fs::path(image).is_absolute()) return image;
        return (fs::path(m_o.imageRoot) / image).string();
    }

    const LabelSettings& settingsOf(const data::StoredSample& s) {
        if (!m_o.labelsFromStore) return m_o.labels;
        auto it = m_settingsCache.find(s.settings);
        if (it == m_settingsCache.end())
            it = m_settingsCache
                     .emplace(s.settings, LabelSettings::fromJsonText(
                                              s.settings, m_o.store + " sample " + s.key + " settings"))
                     .first;
        return it->second;
    }

    // Every stored sample with usable labels and an image file (sdrpn.md §2.6: a sample whose cells are all
    // ignored contributes no loss, so it is left out rather than run).
    void readSamples() {
        data::LabelStore::Options readOnly;
        readOnly.access = data::LabelStore::Access::ReadOnly;
        const data::LabelStore store = data::LabelStore::open(m_o.store, readOnly);
        if (!m_o.dataset.empty()) {
            const auto sets = store.datasets();
            if (std::find(sets.begin(), sets.end(), m_o.dataset) == sets.end())
                throw Error(m_o.store + ": no dataset '" + m_o.dataset + "'");
        }
        const std::int64_t cells = trainingImageTokens(m_model);
        std::int64_t visited = 0;
        bool cancelled = false;
        store.forEach([&](const data::StoredSample& s) {
            if (m_job.cancelRequested()) {
                cancelled = true;
                return false;
            }
            if (!m_o.dataset.empty() && s.dataset != m_o.dataset) return true;
            if (m_o.limit > 0 && visited >= m_o.limit) return false;
            ++visited;
            const std::string name = s.dataset + "/" + s.key;
            if (std::int64_t(s.gridRows) * s.gridCols != cells) {
                skip(name, "labels on a " + std::to_string(s.gridRows) + "x" + std::to_string(s.gridCols) +
                               " grid, the model has " + std::to_string(cells) + " image tokens");
                return true;
            }
            Labels labels;
            try {
                labels = data::labelsOf(s, settingsOf(s));
            } catch (const Error& e) {
                skip(name, e.what());
                return true;
            }
            if (!labels.ok()) {
                skip(name, std::string("every cell ignored (") + labelStatusName(labels.status) + ")");
                return true;
            }
            TrainSample t;
            t.dataset = s.dataset;
            t.key = s.key;
            t.image = resolveImage(s.image);
            t.question = s.question;
            t.fit = s.geometry.fit;
            if (!fs::is_regular_file(t.image)) {
                skip(name, "image not found: " + t.image);
                return true;
            }
            t.targets.assign(labels.values.begin(), labels.values.end());
            m_samples.push_back(std::move(t));
            if (visited % 256 == 0)
                m_job.report(0, 0, "reading labels: " + std::to_string(visited) + " samples");
            return true;
        });
        if (cancelled) throw CancelledError();
    }

    void buildRpn(const fs::path& resumeDir) {
        if (!resumeDir.empty()) {
            // The structure from the backbone, then the checkpoint's fp32 master weights as stored (loadRpn
            // would convert them to the backbone's dtype).
            m_rpn = initRpnFromBackbone(m_backbone, m_rpnConfig);
            m_rpn->to(torch::kFloat);
            const fs::path file = resumeDir / "model.safetensors";
            const auto archive = io::SafetensorsArchive::open(file.string());
            const auto stored = io::loadTensors(*archive);
            torch::NoGradGuard noGrad;
            for (auto& [key, tensor] : m_rpn->checkpointTensors()) {
                auto it = stored.find(key);
                if (it == stored.end()) throw Error(file.string() + ": no tensor '" + key + "'");
                if (it->second.sizes() != tensor.sizes())
                    throw Error(file.string() + ": tensor '" + key + "' is " + c10::str(it->second.sizes()) +
                                " but the twig of " + m_backbone.info().source + " needs " +
                                c10::str(tensor.sizes()) +
                                ": the checkpoint was trained on another backbone");
                tensor.copy_(it->second);
            }
        } else if (!m_o.initFrom.empty()) {
            m_rpn = loadRpn(m_o.initFrom, m_backbone, m_job);
            m_rpn->to(torch::kFloat);
        } else {
            m_rpn = initRpnFromBackbone(m_backbone, m_rpnConfig);  // a copy: the backbone stays untouched
            m_rpn->to(torch::kFloat);
        }
        m_rpn->setTrainable(true);
    }

    std::int64_t restoreState(const json& state, const fs::path& dir, torch::optim::AdamW& optimizer) {
        const std::string file = (dir / kStateFile).string();
        auto need = [&](const char* key) -> const json& {
            if (!state.contains(key)) throw Error(file + ": no '" + std::string(key) + "'");
            return state.at(key);
        };
        const std::int64_t step = need("step").get<std::int64_t>();
        auto mustMatch = [&](const char* key, std::int64_t now) {
            const std::int64_t then = need(key).get<std::int64_t>();
            if (then != now)
                throw Error(file + ": the checkpoint was made with " + key + " = " + std::to_string(then) +
                            ", this run has " + std::to_string(now) + " (the sample order would differ)");
        };
        // The sample order and the loss's averaging depend on the samples per micro-batch over all ranks
        // (batch × ranks), not on how they are split: resume may use another number of ranks.
        const std::int64_t thenRanks =
            state.contains("world_size") ? state["world_size"].get<std::int64_t>() : 1;
        const std::int64_t thenMicro = need("batch").get<std::int64_t>() * thenRanks;
        if (thenMicro != m_microBatch)
            throw Error(file + ": the checkpoint was made with " + std::to_string(thenMicro) +
                        " samples per micro-batch (batch " +
                        std::to_string(need("batch").get<std::int64_t>()) + " x " +
                        std::to_string(thenRanks) + " ranks), this run has " + std::to_string(m_microBatch) +
                        " (batch " + std::to_string(m_o.batch) + " x " + std::to_string(m_world) +
                        " ranks); choose the batch so that batch x ranks = " + std::to_string(thenMicro));
        mustMatch("accum", m_o.accum);
        mustMatch("samples", std::int64_t(m_samples.size()));
        if (need("seed").get<std::uint64_t>() != m_o.seed)
            throw Error(file + ": the checkpoint was made with another seed (the sample order would differ)");
        if (state.contains("losses")) m_losses = state["losses"].get<std::vector<double>>();
        if (std::int64_t(m_losses.size()) > step) m_losses.resize(std::size_t(step));
        const fs::path opt = dir / kOptimizerFile;
        if (!fs::exists(opt)) throw Error(opt.string() + ": missing (the optimizer state of the checkpoint)");
        try {
            torch::load(optimizer, opt.string());
        } catch (const c10::Error& e) {
            throw Error(opt.string() + ": cannot read the optimizer state (" +
                        std::string(e.what_without_backtrace()) + ")");
        }
        m_summary.lastCheckpoint = dir.string();
        m_lastCheckpointStep = step;
        if (!m_writer) return step;

        // metrics.jsonl: the lines up to the resumed step stay, later ones belonged to the lost run.
        const fs::path metricsPath = m_outDir / kMetricsFile;
        std::ostringstream kept;
        std::ifstream in(metricsPath);
        for (std::string line; std::getline(in, line);) {
            if (line.empty()) continue;
            try {
                if (json::parse(line).at("step").get<std::int64_t>() <= step) kept << line << "\n";
            } catch (const json::exception&) {
                // a line cut off by a kill: dropped
            }
        }
        in.close();
        writeTextAtomically(metricsPath, kept.str());
        return step;
    }

    void writeTrainingArgs() {
        json j = optionsJson(m_o, m_rpnConfig);
        j["model"] = m_model.folder;
        j["samples"] = m_samples.size();
        j["skipped"] = m_summary.skipped;
        j["total_steps"] = m_total;
        j["libtorch"] = TORCH_VERSION;
        j["world_size"] = m_world;
        writeTextAtomically(m_outDir / "training_args.json", j.dump(2) + "\n");
    }

    void writeCheckpoint(std::int64_t step, torch::optim::AdamW& optimizer) {
        const fs::path final = m_outDir / checkpointName(step);
        m_summary.lastCheckpoint = final.string();
        m_lastCheckpointStep = step;
        if (!m_writer) return;  // rank 0 writes; the others hold the same weights
        const fs::path tmp = m_outDir / (checkpointName(step) + ".tmp");
        std::error_code ec;
        fs::remove_all(tmp, ec);
        saveRpn(m_rpn, tmp.string());
        // Through memory: LibTorch's file writer throws from its destructor when the disk fills, which
        // ends the process; our own writes say which file and why.
        std::ostringstream optimizerBytes;
        {
            torch::serialize::OutputArchive archive;
            optimizer.save(archive);
            archive.save_to(optimizerBytes);
        }
        writeTextAtomically(tmp / kOptimizerFile, optimizerBytes.str());
        json state;
        state["step"] = step;
        state["epoch"] = step / m_stepsPerEpoch;
        state["position"] =
            std::min<std::int64_t>((step % m_stepsPerEpoch) * m_perStep, std::int64_t(m_samples.size()));
        state["total_steps"] = m_total;
        state["samples"] = m_samples.size();
        state["batch"] = m_o.batch;
        state["world_size"] = m_world;
        state["accum"] = m_o.accum;
        state["seed"] = m_o.seed;
        state["losses"] = m_losses;
        state["options"] = optionsJson(m_o, m_rpnConfig);
        writeTextAtomically(tmp / kStateFile, state.dump(2) + "\n");
        // The same step again (a resumed run stopped before its next step): the earlier copy steps aside
        // as checkpoint-<step>.old until the new one is in place, so a crash between the two renames
        // leaves one whole checkpoint (removeStaleTemporaries puts it back).
        const fs::path old = m_outDir / (checkpointName(step) + kSupersededSuffix);
        fs::remove_all(old, ec);
        ec.clear();
        if (fs::exists(final)) {
            fs::rename(final, old, ec);
            if (ec) throw Error("cannot replace " + final.string() + ": " + ec.message());
        }
        fs::rename(tmp, final, ec);
        if (ec) throw Error("cannot write " + final.string() + ": " + ec.message());
        fs::remove_all(old, ec);
        m_summary.lastCheckpoint = final.string();
        m_lastCheckpointStep = step;
        if (m_o.keepCheckpoints > 0) {
            auto found = listCheckpoints(m_outDir);
            while (found.size() > std::size_t(m_o.keepCheckpoints)) {
                fs::remove_all(found.front().second, ec);
                found.erase(found.begin());
            }
        }
    }

    // hidden[K] of sample `index` (sdrpn.md §3.1: the frozen backbone to layer K, no gradient), from the
    // cache when there. nullopt when its image cannot be read: the sample is then left out for good.
    std::optional<Encoded> encode(std::int64_t index) {
        if (auto it = m_cache.find(index); it != m_cache.end()) return it->second;
        TrainSample& s = m_samples[std::size_t(index)];
        if (s.unusable) return std::nullopt;
        io::ImageRgb8 image;
        try {
            image = io::loadImage(s.image);
            if (image.empty()) throw Error(s.image + ": empty image");
        } catch (const std::exception& e) {
            s.unusable = true;
            skip(s.dataset + "/" + s.key, e.what());
            return std::nullopt;
        }
        const int K = m_rpnConfig.K;
        torch::NoGradGuard noGrad;
        const bool qwen = m_model.family == ModelFamily::Qwen2_5Vl;
        std::string mode = m_o.imageMode.empty() ? models::imageFitName(s.fit) : m_o.imageMode;
        if (qwen && m_o.imageMode.empty()) mode = kQwenLabelImageMode;  // §3.6: as the labels were made
        const PreparedImage prepared = prepareImage(m_model, image, mode, qwen ? kQwenLabelPixels : 0, qwen);
        const torch::Tensor features = m_backbone.encodeImage(prepared.pixelValues);
        const text::PromptIds prompt = buildImagePrompt(
            m_model, renderQuestion(m_model, s.question, m_o.chatTemplate), prepared.tokens());
        if (prompt.length() <= prompt.imageTokenEnd())
            throw Error(
                "SD-RPN needs prompt text after the image (its query token is the last prompt token)");
        models::PrefillOptions pass;
        pass.endLayer = K;
        pass.keepHidden = {K};
        pass.computeLogits = false;
        auto ctx = m_backbone.newContext();
        const models::PrefillResult p =
            m_backbone.prefill(*ctx, promptInput(prompt, features, prepared.grid), pass);
        Encoded e;
        e.hidden = p.hidden.at(K);
        if (e.hidden.dim() == 3) e.hidden = e.hidden[0];
        e.queryRow = prompt.lastPosition();
        e.imageStart = prompt.imageTokenStart;
        e.imageCount = prepared.tokens();
        if (qwen)
            if (const auto* decoder = dynamic_cast<const models::DecoderBackbone*>(&m_backbone))
                e.rope = decoder->ropeRows(*ctx, 0, prompt.length(), e.hidden.scalar_type());
        const std::int64_t bytes = e.hidden.numel() * std::int64_t(e.hidden.element_size());
        if (m_cacheBytes + bytes <= m_o.cacheHiddenMb * 1024 * 1024) {
            m_cacheBytes += bytes;
            m_cache.emplace(index, e);
        }
        return e;
    }

    // One optimizer step; returns whether the job stops after it (a cancel, agreed on by every rank).
    bool trainStep(std::int64_t step, torch::optim::AdamW& optimizer, std::ofstream& metrics) {
        const int epoch = int(step / m_stepsPerEpoch);
        if (epoch != m_orderEpoch) {
            m_order = epochOrder(std::int64_t(m_samples.size()), m_o.seed, epoch);
            m_orderEpoch = epoch;
        }
        const std::int64_t n = std::int64_t(m_samples.size());
        const std::int64_t begin = (step % m_stepsPerEpoch) * m_perStep;
        const std::int64_t end = std::min(n, begin + m_perStep);
        // Micro-batches of batch × ranks samples (accum, or fewer at an epoch's end); rank r takes the r-th
        // `batch` of each, so that any split of the same micro-batch gives the same step.
        const std::int64_t micro = (end - begin + m_microBatch - 1) / m_microBatch;

        const double lr = cosineLearningRate(m_o.lr, step, m_total, m_o.warmupRatio);
        for (auto& group : optimizer.param_groups())
            static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        optimizer.zero_grad();

        const torch::Device device = m_backbone.info().device;
        const bool autocast = m_o.bf16Autocast && device.is_cuda();
        double bceSum = 0.0;
        std::int64_t valid = 0, samples = 0;
        for (std::int64_t m = 0; m < micro; ++m) {
            const std::int64_t microEnd = std::min(end, begin + (m + 1) * m_microBatch);
            const std::int64_t from = std::min(microEnd, begin + m * m_microBatch + m_rank * m_o.batch);
            const std::int64_t to = std::min(microEnd, from + m_o.batch);
            std::vector<std::pair<std::int64_t, Encoded>> mine;
            std::int64_t cells = 0;
            for (std::int64_t i = from; i < to; ++i) {
                const std::int64_t index = m_order[std::size_t(i)];
                std::optional<Encoded> e = encode(index);
                if (!e) continue;
                for (float t : m_samples[std::size_t(index)].targets)
                    cells += t != float(kIgnoreLabel) ? 1 : 0;
                mine.emplace_back(index, std::move(*e));
            }
            // §3.3: BCE-with-logits, mean over every non-ignored cell of the micro-batch (of all ranks).
            const std::int64_t allCells =
                m_group != nullptr ? std::int64_t(m_group->allReduceSum({double(cells)})[0]) : cells;
            if (mine.empty()) continue;
            std::vector<torch::Tensor> logits, targets;
            for (const auto& [index, e] : mine) {
                torch::Tensor l;
                {
                    CudaBf16Autocast guard(autocast);
                    const torch::Tensor hidden = autocast ? e.hidden : e.hidden.to(torch::kFloat);
                    l = m_rpn->forward(hidden, e.queryRow, e.imageStart, e.imageCount,
                                       e.rope.cos.defined() ? &e.rope : nullptr);
                }
                logits.push_back(l.to(torch::kFloat));
                const auto& t = m_samples[std::size_t(index)].targets;
                targets.push_back(torch::tensor(t, torch::kFloat).to(device));
                ++samples;
            }
            const torch::Tensor all = torch::cat(logits), target = torch::cat(targets);
            const torch::Tensor mask = target != float(kIgnoreLabel);
            torch::Tensor loss;
            if (cells > 0) {
                const torch::Tensor sum = torch::binary_cross_entropy_with_logits(
                    all.masked_select(mask), target.masked_select(mask), {}, {}, at::Reduction::Sum);
                bceSum += sum.item<double>();
                loss = sum / double(allCells);
            } else {
                loss = all.sum() * 0.0;  // keeps the graph alive when no cell counts
            }
            valid += cells;
            (loss / double(micro)).backward();
        }

        // The step's statistics and the cancel decision, summed over the ranks; then the gradients.
        bool stop = m_job.cancelRequested();
        if (m_group != nullptr) {
            const std::vector<double> sums =
                m_group->allReduceSum({bceSum, double(valid), double(samples), stop ? 1.0 : 0.0});
            bceSum = sums[0];
            valid = std::int64_t(sums[1]);
            samples = std::int64_t(sums[2]);
            stop = sums[3] > 0.0;
            dist::allReduceGradients(*m_group, m_rpn->parameters());
        }

        std::vector<torch::Tensor> params = m_rpn->parameters();
        double gradNorm = 0.0;
        if (samples > 0) {
            if (m_o.maxGradNorm > 0) {
                gradNorm = torch::nn::utils::clip_grad_norm_(params, m_o.maxGradNorm);
            } else {
                double sq = 0.0;
                for (const auto& p : params)
                    if (p.grad().defined())
                        sq += p.grad().detach().to(torch::kDouble).pow(2).sum().item<double>();
                gradNorm = std::sqrt(sq);
            }
            optimizer.step();  // a step whose samples were all unreadable changes nothing
        }

        TrainMetrics mt;
        mt.step = step + 1;
        mt.totalSteps = m_total;
        mt.epoch = epoch;
        mt.loss = valid > 0 ? bceSum / double(valid) : 0.0;
        mt.lr = lr;
        mt.gradNorm = gradNorm;
        mt.validCells = valid;
        mt.samples = samples;
        mt.seconds = secondsSince(m_t0);
        const std::int64_t doneHere = mt.step - m_startStep;
        mt.etaSeconds = doneHere > 0 ? mt.seconds / double(doneHere) * double(m_total - mt.step) : -1.0;
        m_losses.push_back(mt.loss);

        if (m_writer) {
            json line{{"step", mt.step},       {"epoch", mt.epoch},        {"loss", mt.loss},
                      {"lr", mt.lr},           {"grad_norm", mt.gradNorm}, {"valid_cells", mt.validCells},
                      {"samples", mt.samples}, {"seconds", mt.seconds}};
            metrics << line.dump() << "\n";
            metrics.flush();
        }
        if (m_onStep) m_onStep(mt);
        char msg[160];
        std::snprintf(msg, sizeof msg, "step %lld/%lld | loss %.4f | lr %s", (long long)mt.step,
                      (long long)m_total, mt.loss, formatLr(lr).c_str());
        m_job.report(mt.step, m_total, msg);
        return stop;
    }

    const LoadedModel& m_model;
    const models::Backbone& m_backbone;
    const TrainOptions& m_o;
    JobContext& m_job;
    const TrainCallback& m_onStep;
    dist::Group* m_group;
    const int m_rank, m_world;
    const bool m_writer;  // rank 0 writes checkpoints, metrics and the final model

    Clock::time_point m_t0;
    RpnConfig m_rpnConfig;
    fs::path m_outDir;
    TrainSummary m_summary;
    std::vector<TrainSample> m_samples;
    std::map<std::string, LabelSettings> m_settingsCache;
    Rpn m_rpn{nullptr};
    std::int64_t m_microBatch = 1, m_perStep = 1, m_stepsPerEpoch = 1, m_total = 0, m_startStep = 0;
    std::int64_t m_lastCheckpointStep = -1;
    std::vector<double> m_losses;
    std::vector<std::int64_t> m_order;
    int m_orderEpoch = -1;
    std::map<std::int64_t, Encoded> m_cache;
    std::int64_t m_cacheBytes = 0;
};

}  // namespace

RpnConfig defaultRpnConfig(const models::Backbone& backbone) {
    const int layers = backbone.layerCount();
    RpnConfig c;
    c.T = 3;
    c.multiHead = true;
    c.K = layers == 32 || layers == 40 ? 15 : int(std::lround(double(layers) * 15.0 / 32.0));
    c.K = std::max(1, c.K);
    if (c.K + c.T > layers) c.T = std::max(1, layers - c.K);
    if (c.K + c.T > layers) c.K = std::max(1, layers - c.T);
    return c;
}

double cosineLearningRate(double baseLr, std::int64_t step, std::int64_t total, double warmupRatio) {
    const std::int64_t warmup = std::int64_t(std::ceil(warmupRatio * double(total)));
    if (step < warmup) return baseLr * double(step) / double(std::max<std::int64_t>(1, warmup));
    const double progress = double(step - warmup) / double(std::max<std::int64_t>(1, total - warmup));
    return baseLr * std::max(0.0, 0.5 * (1.0 + std::cos(kPi * progress)));
}

Result<TrainSummary> trainRpn(const LoadedModel& model, const TrainOptions& options, JobContext& job,
                              const TrainCallback& onStep) {
    return guarded([&]() -> TrainSummary {
        Trainer trainer(model, options, job, onStep);
        return trainer.run();
    });
}

}  // namespace sdrpn::pipeline
