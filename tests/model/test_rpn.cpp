// The SD-RPN twig (sdrpn.md §3.1–3.2, §3.4) on the tiny LLaVA fixture (6 layers, 4 heads, hidden 64):
// twiginit from the backbone equals the same computation done by hand with the backbone's own layers,
// checkpoints round-trip in SD-RPN's key layout, "filled" checkpoints load only the twig, the parameters
// train, and bad checkpoints fail naming the culprit.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/llava.h"
#include "core/sdrpn/rpn.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr std::int64_t kImageStart = 49;
constexpr std::int64_t kImageTokens = 576;

class RpnTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        torch::NoGradGuard noGrad;
        const std::string dir = test::fixturePath("tiny-llava-hf");
        s_model = loadLlava(dir, LoadOptions{}, JobContext::none());
        auto ref = io::SafetensorsArchive::open(dir + "/reference.safetensors");
        auto ids = io::loadTensor(*ref, "input_ids").flatten().contiguous();
        s_ids = new std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                              ids.data_ptr<std::int64_t>() + ids.numel());
        s_features = new torch::Tensor(s_model->encodeImage(io::loadTensor(*ref, "pixel_values.336")));
    }
    static void TearDownTestSuite() {
        s_model.reset();
        delete s_ids;
        delete s_features;
    }

    // Pass 1 to layer K: the input of layer K for every prompt row.
    static torch::Tensor hiddenAt(int K) {
        torch::NoGradGuard noGrad;
        auto ctx = s_model->newContext();
        PrefillOptions o;
        o.endLayer = K;
        o.keepHidden = {K};
        o.computeLogits = false;
        return s_model->prefill(*ctx, PromptInput::fromTokenIds(*s_ids, 512, {*s_features}), o).hidden.at(K);
    }
    static std::int64_t queryRow() { return std::int64_t(s_ids->size()) - 1; }

    static std::shared_ptr<const LlavaModel> s_model;
    static std::vector<std::int64_t>* s_ids;
    static torch::Tensor* s_features;
};

std::shared_ptr<const LlavaModel> RpnTest::s_model;
std::vector<std::int64_t>* RpnTest::s_ids = nullptr;
torch::Tensor* RpnTest::s_features = nullptr;

TEST_F(RpnTest, TwigInitLogitsAreFiniteOnTheImageGrid) {
    torch::NoGradGuard noGrad;
    Rpn rpn = initRpnFromBackbone(*s_model, {3, 2, true});
    torch::Tensor logits = rpn->forward(hiddenAt(3), queryRow(), kImageStart, kImageTokens);
    EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{576}));
    EXPECT_EQ(logits.scalar_type(), torch::kFloat);
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
    EXPECT_GT(logits.std().item<float>(), 0.0f);
    EXPECT_EQ(s_model->imageGrid().cells(), logits.numel());
}

TEST_F(RpnTest, TwigInitEqualsTheBackboneLayersByHand) {
    // §3.1: h = layer K (full) → final norm (twig_norm from model.norm) → layer K+1's input_layernorm,
    // q_proj, k_proj → mean over heads of q_h·k_h / √d.
    torch::NoGradGuard noGrad;
    const int K = 3;
    Rpn rpn = initRpnFromBackbone(*s_model, {K, 2, true});
    const torch::Tensor h0 = hiddenAt(K);
    auto text = s_model->text();
    const std::int64_t len = h0.size(0);
    auto rope = text->rotary().table(0, len, h0.scalar_type());
    torch::Tensor h = text->layer(K)->forward(h0.unsqueeze(0), rope, 0)[0];
    h = text->norm()->forward(h);
    auto score = text->layer(K + 1);
    auto x = score->inputNorm()->forward(h);
    auto q = score->attention()->qProj()->forward(x[queryRow()]).view({4, 16});
    auto k = score->attention()
                 ->kProj()
                 ->forward(x.narrow(0, kImageStart, kImageTokens))
                 .view({kImageTokens, 4, 16});
    torch::Tensor expected = (k * q.unsqueeze(0)).sum(-1).mean(-1) / 4.0;  // √16
    EXPECT_TENSOR_NEAR(rpn->forward(h0, queryRow(), kImageStart, kImageTokens), expected, 1e-5);

    // Without roi_multi_head: the plain dot product, H·√d times larger here (no GQA).
    Rpn plain = initRpnFromBackbone(*s_model, {K, 2, false});
    EXPECT_TENSOR_NEAR(plain->forward(h0, queryRow(), kImageStart, kImageTokens), expected * 16.0, 1e-4);

    // T = 1: no full twig layer, twig_norm then layer K's projections.
    Rpn one = initRpnFromBackbone(*s_model, {K, 1, true});
    auto x1 = text->layer(K)->inputNorm()->forward(text->norm()->forward(h0));
    auto q1 = text->layer(K)->attention()->qProj()->forward(x1[queryRow()]).view({4, 16});
    auto k1 = text->layer(K)
                  ->attention()
                  ->kProj()
                  ->forward(x1.narrow(0, kImageStart, kImageTokens))
                  .view({kImageTokens, 4, 16});
    EXPECT_TENSOR_NEAR(one->forward(h0, queryRow(), kImageStart, kImageTokens),
                       (k1 * q1.unsqueeze(0)).sum(-1).mean(-1) / 4.0, 1e-5);
}

TEST_F(RpnTest, CheckpointKeysFollowSdRpn) {
    Rpn rpn = initRpnFromBackbone(*s_model, {3, 2, true});
    std::set<std::string> names;
    for (const auto& [name, t] : rpn->checkpointTensors()) names.insert(name);
    std::set<std::string> expected;
    for (const auto& s : rpnWeightSpecs({3, 2, true}, s_model->config().text))
        expected.insert("model." + s.name);
    EXPECT_EQ(names, expected);
    EXPECT_TRUE(names.count("model.twig_layers.0.mlp.down_proj.weight"));
    EXPECT_TRUE(names.count("model.twig_layers.1.self_attn.k_proj.weight"));
    EXPECT_FALSE(
        names.count("model.twig_layers.1.self_attn.v_proj.weight"));  // unused part of the last layer
    EXPECT_TRUE(names.count("model.twig_norm.weight"));
    EXPECT_EQ(names.size(), 9u + 3u + 1u);
}

TEST_F(RpnTest, SaveLoadRoundTripGivesIdenticalLogits) {
    torch::NoGradGuard noGrad;
    Rpn rpn = initRpnFromBackbone(*s_model, {3, 2, true});
    // Make it differ from the backbone so that a load that fell back to twiginit would be caught.
    for (auto& p : rpn->parameters()) p.add_(0.01 * torch::randn_like(p));
    const std::string dir = test::scratchDir("rpn") + "/ckpt";
    saveRpn(rpn, dir);
    EXPECT_TRUE(std::filesystem::exists(dir + "/model.safetensors"));
    EXPECT_EQ(readRpnConfig(dir), (RpnConfig{3, 2, true}));
    EXPECT_EQ(readRpnConfig(dir + "/model.safetensors"), (RpnConfig{3, 2, true}));

    Rpn loaded = loadRpn(dir, *s_model);
    EXPECT_EQ(loaded->config(), rpn->config());
    const torch::Tensor h = hiddenAt(3);
    EXPECT_TRUE(torch::equal(loaded->forward(h, queryRow(), kImageStart, kImageTokens),
                             rpn->forward(h, queryRow(), kImageStart, kImageTokens)));
    // The file alone (metadata holds twig_K / twig_T) once the folder's config is gone.
    std::filesystem::remove(dir + "/config.json");
    Rpn fromFile = loadRpn(dir + "/model.safetensors", *s_model);
    EXPECT_TRUE(torch::equal(fromFile->forward(h, queryRow(), kImageStart, kImageTokens),
                             rpn->forward(h, queryRow(), kImageStart, kImageTokens)));
}

TEST_F(RpnTest, FilledCheckpointLoadsOnlyTheTwig) {
    // An SD-RPN "filled" checkpoint: the whole model plus model.twig_layers.* / model.twig_norm /
    // model.twig_head, config.json with twig_K, twig_T, roi_multi_head.
    torch::NoGradGuard noGrad;
    Rpn rpn = initRpnFromBackbone(*s_model, {2, 3, true});
    std::vector<std::pair<std::string, torch::Tensor>> tensors = rpn->checkpointTensors();
    for (auto& [name, t] : tensors) t = t + 0.5;  // distinct from the backbone
    tensors.emplace_back("model.layers.0.input_layernorm.weight", torch::ones({64}));
    tensors.emplace_back("model.norm.weight", torch::ones({64}));
    tensors.emplace_back("model.twig_head.weight", torch::zeros({514, 64}));
    tensors.emplace_back("model.twig_layers.2.mlp.up_proj.weight",
                         torch::zeros({3, 3}));  // unused, any shape
    tensors.emplace_back("model.twig_layers.2.self_attn.v_proj.weight", torch::zeros({64, 64}));
    const std::string dir = test::scratchDir("filled");
    io::saveTensors(dir + "/model.safetensors", tensors);
    std::ofstream(dir + "/config.json") << R"({"model_type": "llava_llama", "twig_K": 2, "twig_T": 3,
        "roi_multi_head": true, "hidden_size": 64})";
    Rpn loaded = loadRpn(dir, *s_model);
    EXPECT_EQ(loaded->config(), (RpnConfig{2, 3, true}));
    for (const auto& [name, t] : loaded->checkpointTensors()) {
        auto it =
            std::find_if(tensors.begin(), tensors.end(), [&](const auto& p) { return p.first == name; });
        ASSERT_NE(it, tensors.end()) << name;
        EXPECT_TRUE(torch::equal(t, it->second)) << name;
    }
}

TEST_F(RpnTest, ParametersTrain) {
    Rpn rpn = initRpnFromBackbone(*s_model, {3, 2, true});
    for (const auto& p : rpn->parameters()) EXPECT_FALSE(p.requires_grad());
    rpn->setTrainable(true);
    const torch::Tensor h = hiddenAt(3);
    torch::Tensor logits = rpn->forward(h, queryRow(), kImageStart, kImageTokens);
    torch::Tensor labels = (torch::arange(576) % 7 == 0).to(torch::kFloat);
    torch::binary_cross_entropy_with_logits(logits, labels).backward();
    for (const auto& p : rpn->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0.0f) << p.key();
    }
    // The copy is the RPN's own: the backbone's layer is untouched by an optimiser step.
    const torch::Tensor before = s_model->decoderLayerWeights(4).at("self_attn.q_proj.weight").clone();
    torch::optim::SGD sgd(rpn->parameters(), torch::optim::SGDOptions(1.0));
    sgd.step();
    EXPECT_TRUE(torch::equal(s_model->decoderLayerWeights(4).at("self_attn.q_proj.weight"), before));
}

TEST_F(RpnTest, BadConfigurationsAndCheckpointsNameTheCulprit) {
    auto message = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const std::exception& e) {
            return e.what();
        }
        return "(no error)";
    };
    EXPECT_NE(message([&] { initRpnFromBackbone(*s_model, {5, 2, true}); }).find("K + T"), std::string::npos);
    EXPECT_NE(message([&] {
                  initRpnFromBackbone(*s_model, {0, 2, true});
              }).find("twig_K"),
              std::string::npos);

    const std::string dir = test::scratchDir("bad");
    EXPECT_NE(message([&] { loadRpn(dir, *s_model); }).find("config.json"), std::string::npos);
    std::ofstream(dir + "/config.json") << R"({"twig_T": 2})";
    EXPECT_NE(message([&] { loadRpn(dir, *s_model); }).find("twig_K"), std::string::npos);
    std::ofstream(dir + "/config.json") << R"({"twig_K": "three", "twig_T": 2})";
    EXPECT_NE(message([&] { loadRpn(dir, *s_model); }).find("twig_K"), std::string::npos);
    std::ofstream(dir + "/config.json") << R"({"twig_K": 9, "twig_T": 2})";
    EXPECT_NE(message([&] { loadRpn(dir, *s_model); }).find("twig_K = 9"), std::string::npos);
    std::ofstream(dir + "/config.json") << R"({"twig_K": 3, "twig_T": 2})";
    EXPECT_NE(message([&] { loadRpn(dir, *s_model); }).find(".safetensors"), std::string::npos);

    // A checkpoint missing a twig tensor and with a wrong shape: both listed, with the file.
    Rpn rpn = initRpnFromBackbone(*s_model, {3, 2, true});
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (auto& [name, t] : rpn->checkpointTensors()) {
        if (name == "model.twig_norm.weight") continue;
        tensors.emplace_back(
            name, name == "model.twig_layers.1.self_attn.q_proj.weight" ? torch::zeros({8, 64}) : t);
    }
    io::saveTensors(dir + "/model.safetensors", tensors);
    const std::string m = message([&] { loadRpn(dir, *s_model); });
    EXPECT_NE(m.find("twig_norm.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("twig_layers.1.self_attn.q_proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find(dir), std::string::npos) << m;
    EXPECT_FALSE(tryLoadRpn(dir, *s_model).ok());

    // Bad forward arguments.
    const torch::Tensor h = hiddenAt(3);
    EXPECT_THROW(rpn->forward(h, h.size(0), kImageStart, kImageTokens), c10::Error);
    EXPECT_THROW(rpn->forward(h, queryRow(), kImageStart, h.size(0)), c10::Error);
    EXPECT_THROW(rpn->forward(h.narrow(1, 0, 32), queryRow(), kImageStart, kImageTokens), c10::Error);
}

TEST_F(RpnTest, NormaliseKeys) {
    const RpnConfig c{15, 3, true};
    EXPECT_EQ(normaliseRpnKey("model.twig_layers.0.mlp.up_proj.weight", c),
              "twig_layers.0.mlp.up_proj.weight");
    EXPECT_EQ(normaliseRpnKey("language_model.model.twig_layers.2.self_attn.q_proj.weight", c),
              "twig_layers.2.self_attn.q_proj.weight");
    EXPECT_EQ(normaliseRpnKey("model.twig_layers.2.self_attn.v_proj.weight", c), "");
    EXPECT_EQ(normaliseRpnKey("model.twig_layers.2.mlp.up_proj.weight", c), "");
    EXPECT_EQ(normaliseRpnKey("model.twig_layers.3.input_layernorm.weight", c), "");
    EXPECT_EQ(normaliseRpnKey("model.twig_norm.weight", c), "twig_norm.weight");
    EXPECT_EQ(normaliseRpnKey("model.twig_head.weight", c), "");
    EXPECT_EQ(normaliseRpnKey("model.layers.15.self_attn.q_proj.weight", c), "");
    EXPECT_EQ(normaliseRpnKey("model.my_twig_norm.weight", c), "");
}

}  // namespace
