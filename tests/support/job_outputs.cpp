#include "tests/support/job_outputs.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "core/data/label_store.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"

namespace sdrpn::test {

std::map<std::string, torch::Tensor> readWeights(const std::string& file) {
    const auto archive = io::SafetensorsArchive::open(file);
    std::map<std::string, torch::Tensor> out;
    for (auto& [k, v] : io::loadTensors(*archive)) out[k] = v.clone();
    return out;
}

void expectSameWeights(const std::string& a, const std::string& b) {
    const auto wa = readWeights(a), wb = readWeights(b);
    ASSERT_EQ(wa.size(), wb.size());
    ASSERT_FALSE(wa.empty());
    std::int64_t elements = 0, off = 0;
    double worst = 0.0;
    std::string worstKey;
    for (const auto& [key, t] : wa) {
        ASSERT_TRUE(wb.count(key)) << key;
        ASSERT_EQ(wb.at(key).sizes(), t.sizes()) << key;
        const torch::Tensor diff = (wb.at(key).to(torch::kDouble) - t.to(torch::kDouble)).abs();
        elements += diff.numel();
        off += (diff > 1e-6).sum().item<std::int64_t>();
        const double m = diff.max().item<double>();
        if (m > worst) worst = m, worstKey = key;
    }
    EXPECT_LE(double(off), 0.001 * double(elements))
        << off << " of " << elements << " elements differ by > 1e-6";
    EXPECT_LE(worst, 1e-4) << worstKey;
}

void expectSameStore(const std::string& a, const std::string& b, std::int64_t samples,
                     const std::string& copy) {
    std::filesystem::copy_file(a, copy, std::filesystem::copy_options::overwrite_existing);
    data::LabelStore store = data::LabelStore::open(copy);
    const data::MergeReport r = store.mergeFrom(b);
    EXPECT_EQ(r.added, 0);
    EXPECT_EQ(r.duplicates, samples);
    EXPECT_TRUE(r.conflicts.empty()) << r.conflicts.front().key << ": " << r.conflicts.front().reason;
    EXPECT_EQ(store.count(), samples);
}

}  // namespace sdrpn::test
