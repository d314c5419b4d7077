#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "core/jobs.h"
#include "core/result.h"

using namespace sdrpn;

TEST(Result, CarriesValueOrStatus) {
    Result<int> ok = 42;
    EXPECT_TRUE(ok.ok());
    EXPECT_EQ(ok.value(), 42);

    Result<int> bad = Status::failed("config.json: key 'hidden_size' is not an integer");
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code, StatusCode::Failed);
    EXPECT_NE(bad.message().find("hidden_size"), std::string::npos);
    EXPECT_THROW(bad.value(), Error);
}

TEST(Result, OkStatusWithoutValueIsRejected) {
    Result<int> r = Status::success();
    EXPECT_FALSE(r.ok());
}

TEST(Result, GuardedTurnsExceptionsIntoStatuses) {
    auto failed = guarded([]() -> int { throw Error("weights.safetensors: truncated"); });
    EXPECT_EQ(failed.status().code, StatusCode::Failed);
    EXPECT_EQ(failed.message(), "weights.safetensors: truncated");

    auto cancelled = guarded([]() -> int { throw CancelledError(); });
    EXPECT_EQ(cancelled.status().code, StatusCode::Cancelled);

    auto oom = guarded([]() -> int { throw std::bad_alloc(); });
    EXPECT_EQ(oom.status().code, StatusCode::OutOfMemory);

    auto fine = guarded([] { return 7; });
    ASSERT_TRUE(fine.ok());
    EXPECT_EQ(fine.value(), 7);

    auto voidFine = guarded([] {});
    EXPECT_TRUE(voidFine.ok());
}

TEST(JobContext, CancelFromAnotherThreadStopsWork) {
    JobContext ctx;
    int reports = 0;
    ctx.onProgress = [&](const Progress& p) {
        ++reports;
        EXPECT_LE(p.fraction(), 1.0);
    };
    std::thread canceller([&] { ctx.requestCancel(); });
    canceller.join();
    auto r = guarded([&] {
        for (int i = 0; i < 1000; ++i) {
            ctx.report(i, 1000, "step");
            ctx.throwIfCancelled();
        }
    });
    EXPECT_EQ(r.status().code, StatusCode::Cancelled);
    EXPECT_EQ(reports, 1);
}

TEST(JobContext, ProgressFraction) {
    EXPECT_DOUBLE_EQ((Progress{1, 4, ""}).fraction(), 0.25);
    EXPECT_DOUBLE_EQ((Progress{3, 0, ""}).fraction(), 0.0);
}
