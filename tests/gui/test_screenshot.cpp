// sdrpn-studio --screenshot: the real executable, offscreen, opens a model and an image, asks the question
// and waits for the answer, writes a PNG of the window and exits 0; a failure exits non-zero with a message
// on stderr. With an RPN (--rpn, --rpn-k/--rpn-t) and --sdrpn it shows the SD-RPN answer.
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QProcess>
#include <QProcessEnvironment>
#include <QSet>

#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"

namespace {

using sdrpn::test::qs;
struct StudioRun {
    int exitCode = -1;
    QString stdErr;
};

// Runs the studio on Qt's offscreen platform, or with `underXvfb` on a real X server (xvfb-run, Qt's xcb
// platform) as on a desktop.
StudioRun runStudio(const QStringList& args, bool underXvfb = false) {
    QProcess process;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    const QString studio = QStringLiteral(SDRPN_BINARY_DIR "/app/sdrpn-studio");
    if (underXvfb) {
        env.insert("QT_QPA_PLATFORM", "xcb");
        env.remove("DISPLAY");
        process.setProcessEnvironment(env);
        process.start(QStringLiteral("xvfb-run"),
                      QStringList{"-a", "-s", "-screen 0 1600x1000x24", studio} + args);
    } else {
        env.insert("QT_QPA_PLATFORM", "offscreen");
        process.setProcessEnvironment(env);
        process.start(studio, args);
    }
    StudioRun run;
    if (!process.waitForStarted(30000)) {
        run.stdErr = process.errorString();
        return run;
    }
    if (!process.waitForFinished(180000)) {
        process.kill();
        process.waitForFinished();
        run.stdErr = "timed out";
        return run;
    }
    run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -2;
    run.stdErr = QString::fromLocal8Bit(process.readAllStandardError());
    return run;
}

}  // namespace

TEST(StudioScreenshot, WritesAPngOfTheWindow) {
    const QString shot = qs(sdrpn::test::scratchDir("shot")) + "/studio.png";
    const StudioRun run =
        runStudio({"--model", qs(sdrpn::test::fixturePath("tiny-llava-hf")), "--image",
                   qs(sdrpn::test::fixturePath("tiny-llava-hf/image_640x480.png")), "--question",
                   "What is in the top left corner?", "--max-new-tokens", "8", "--screenshot", shot});
    ASSERT_EQ(run.exitCode, 0) << run.stdErr.toStdString();
    const QImage picture(shot);
    ASSERT_FALSE(picture.isNull());
    EXPECT_EQ(picture.size(), QSize(1400, 900));
    // Not a blank picture: the image view's canvas and the panels differ.
    EXPECT_NE(picture.pixelColor(700, 450), picture.pixelColor(1390, 890));
}

// The number of distinct colours of `picture`: a blank or single-colour window has a handful.
int distinctColours(const QImage& picture) {
    QSet<QRgb> colours;
    for (int y = 0; y < picture.height(); y += 2)
        for (int x = 0; x < picture.width(); x += 2) colours.insert(picture.pixel(x, y));
    return int(colours.size());
}

// The studio on the other backbones: Qwen2.5-VL (its own 17 × 23 grid, SD-RPN with an untrained twig) and
// DeepSeek-VL (no tokenizer in the fixture: the model opens and its card says why it cannot be asked).
TEST(StudioScreenshot, OpensQwenWithSdrpnAndDeepseek) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_backbones"));
    const QString qwen = qs(sdrpn::test::fixturePath("tiny-qwen2_5-vl"));
    const StudioRun q = runStudio({"--model", qwen, "--image", qwen + "/image_640x480.png", "--question",
                                   "What is written on the sign?", "--max-new-tokens", "4", "--rpn-k", "1",
                                   "--rpn-t", "2", "--sdrpn", "--screenshot", dir + "/qwen.png"});
    ASSERT_EQ(q.exitCode, 0) << q.stdErr.toStdString();
    const QImage qwenShot(dir + "/qwen.png");
    ASSERT_FALSE(qwenShot.isNull());
    EXPECT_GT(distinctColours(qwenShot), 200);

    const QString deepseek = qs(sdrpn::test::fixturePath("tiny-deepseek-vl"));
    const StudioRun d = runStudio({"--model", deepseek, "--screenshot", dir + "/deepseek.png"});
    ASSERT_EQ(d.exitCode, 0) << d.stdErr.toStdString();
    EXPECT_FALSE(QImage(dir + "/deepseek.png").isNull());
}

TEST(StudioScreenshot, UnderXvfbAsOnADesktop) {
    const QString shot = qs(sdrpn::test::scratchDir("shot_xvfb")) + "/studio.png";
    const StudioRun run = runStudio({"--model", qs(sdrpn::test::fixturePath("tiny-llava-hf")), "--image",
                                     qs(sdrpn::test::fixturePath("tiny-llava-hf/image_640x480.png")),
                                     "--question", "What is in the top left corner?", "--max-new-tokens", "4",
                                     "--rpn-k", "3", "--rpn-t", "2", "--sdrpn", "--screenshot", shot},
                                    /*underXvfb=*/true);
    ASSERT_EQ(run.exitCode, 0)
        << "xvfb-run (package xvfb) and the xcb platform (qt6-qpa-plugins) are needed: "
        << run.stdErr.toStdString();
    const QImage picture(shot);
    ASSERT_FALSE(picture.isNull());
    EXPECT_EQ(picture.size(), QSize(1400, 900));
    // Not blank: the image, the heat maps, the text and the panels make many colours.
    EXPECT_GT(distinctColours(picture), 200);
    EXPECT_NE(picture.pixelColor(700, 450), picture.pixelColor(1390, 890));
}

TEST(StudioScreenshot, ReportsAFailureOnStderrWithANonZeroExit) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_fail"));
    const QString shot = dir + "/studio.png";
    const StudioRun run = runStudio({"--image", dir + "/missing.png", "--screenshot", shot});
    EXPECT_NE(run.exitCode, 0);
    EXPECT_TRUE(run.stdErr.contains("missing.png")) << run.stdErr.toStdString();
    EXPECT_TRUE(QFileInfo::exists(shot));  // the picture still shows the error state
}

TEST(StudioScreenshot, RefusesABadTokenLimitOrDevice) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_bad_option"));
    const StudioRun limit = runStudio({"--max-new-tokens", "many", "--screenshot", dir + "/x.png"});
    EXPECT_EQ(limit.exitCode, 2);
    EXPECT_TRUE(limit.stdErr.contains("--max-new-tokens")) << limit.stdErr.toStdString();

    const StudioRun device = runStudio({"--model", qs(sdrpn::test::fixturePath("tiny-llava-hf")), "--device",
                                        "abacus", "--screenshot", dir + "/y.png"});
    EXPECT_EQ(device.exitCode, 1);
    EXPECT_TRUE(device.stdErr.contains("abacus")) << device.stdErr.toStdString();
}

TEST(StudioScreenshot, OpensASessionFile) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_session"));
    const QString session = dir + "/one.sdrpn.json";
    {
        QFile file(session);
        ASSERT_TRUE(file.open(QIODevice::WriteOnly));
        file.write(QStringLiteral(R"({"format": "sdrpn-studio-session", "version": 1,
            "model": {"folder": "%1"}, "image": {"path": "%2"}, "question": "Where?",
            "view": {"fit": false, "zoom": 3.0, "center": [100, 80]}})")
                       .arg(qs(sdrpn::test::fixturePath("tiny-llava-hf")),
                            qs(sdrpn::test::fixturePath("tiny-llava-hf/image_640x480.png")))
                       .toUtf8());
    }
    const StudioRun ok = runStudio({"--session-file", session, "--screenshot", dir + "/ok.png"});
    EXPECT_EQ(ok.exitCode, 0) << ok.stdErr.toStdString();
    EXPECT_EQ(QImage(dir + "/ok.png").size(), QSize(1400, 900));

    // A missing session is reported (the option is not swallowed by Qt's own "-session").
    const StudioRun missing =
        runStudio({"--session-file", dir + "/missing.sdrpn.json", "--screenshot", dir + "/x.png"});
    EXPECT_NE(missing.exitCode, 0);
    EXPECT_TRUE(missing.stdErr.contains("missing.sdrpn.json")) << missing.stdErr.toStdString();
}

TEST(StudioScreenshot, AsksWithSdrpnFromAnRpnOption) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_sdrpn"));
    const QString filled =
        qs(sdrpn::test::writeFilledCheckpoint(sdrpn::test::scratchDir("shot_rpn") + "/ckpt"));
    const QStringList ask = {
        "--model",          qs(sdrpn::test::fixturePath("tiny-llava-hf")),
        "--image",          qs(sdrpn::test::fixturePath("tiny-llava-hf/image_640x480.png")),
        "--question",       "What is written on the sign?",
        "--max-new-tokens", "4",
        "--sdrpn"};
    const StudioRun twig =
        runStudio(ask + QStringList{"--rpn-k", "3", "--rpn-t", "2", "--screenshot", dir + "/twig.png"});
    ASSERT_EQ(twig.exitCode, 0) << twig.stdErr.toStdString();
    const QImage twigPicture(dir + "/twig.png");
    ASSERT_FALSE(twigPicture.isNull());
    EXPECT_EQ(twigPicture.size(), QSize(1400, 900));

    const StudioRun checkpoint =
        runStudio(ask + QStringList{"--rpn", filled, "--screenshot", dir + "/ckpt.png"});
    ASSERT_EQ(checkpoint.exitCode, 0) << checkpoint.stdErr.toStdString();
    EXPECT_EQ(QImage(dir + "/ckpt.png").size(), QSize(1400, 900));

    // The SD-RPN view is not the plain answer's.
    const StudioRun plain =
        runStudio(ask.mid(0, ask.size() - 1) + QStringList{"--screenshot", dir + "/plain.png"});
    ASSERT_EQ(plain.exitCode, 0) << plain.stdErr.toStdString();
    EXPECT_NE(QImage(dir + "/plain.png"), twigPicture);
}

TEST(StudioScreenshot, RefusesBadRpnOptions) {
    const QString dir = qs(sdrpn::test::scratchDir("shot_bad_rpn"));
    const QString model = qs(sdrpn::test::fixturePath("tiny-llava-hf"));
    struct Case {
        QStringList args;
        int exitCode;
        QString named;  // what the message must name
    };
    const QList<Case> cases = {
        // Usage errors: exit 2.
        {{"--model", model, "--rpn", dir, "--rpn-k", "3", "--rpn-t", "2"}, 2, "--rpn-k"},
        {{"--model", model, "--rpn-k", "3"}, 2, "--rpn-t"},
        {{"--model", model, "--rpn-k", "0", "--rpn-t", "2"}, 2, "--rpn-k"},
        {{"--vision-tower", dir}, 2, "--vision-tower"},
        // Valid options the model cannot take: a twig beyond its 6 layers, SD-RPN with no RPN at all.
        {{"--model", model, "--rpn-k", "5", "--rpn-t", "3"}, 1, "K + T"},
        {{"--model", model, "--sdrpn"}, 1, "--sdrpn"},
    };
    int n = 0;
    for (const Case& c : cases) {
        const QString picture = dir + QStringLiteral("/%1.png").arg(n++);
        const StudioRun run = runStudio(c.args + QStringList{"--screenshot", picture});
        EXPECT_EQ(run.exitCode, c.exitCode) << c.args.join(' ').toStdString();
        EXPECT_TRUE(run.stdErr.contains(c.named)) << run.stdErr.toStdString();
        // A failure after the start still leaves its picture.
        if (c.exitCode == 1) EXPECT_TRUE(QFileInfo::exists(picture)) << picture.toStdString();
    }
}

TEST(StudioScreenshot, OriginalLayoutWithItsClipFolder) {
    const std::string root = sdrpn::test::scratchDir("shot_original");
    const QString modelDir =
        qs(sdrpn::test::writeOriginalLlava(root, "my-clip", "openai/clip-vit-large-patch14-336"));
    const QString dir = qs(root);
    // Nobody to ask in screenshot mode: the missing tower is a failure that names it.
    const StudioRun missing = runStudio({"--model", modelDir, "--screenshot", dir + "/missing.png"});
    EXPECT_EQ(missing.exitCode, 1);
    EXPECT_TRUE(missing.stdErr.contains("openai/clip-vit-large-patch14-336")) << missing.stdErr.toStdString();
    EXPECT_TRUE(missing.stdErr.contains("--vision-tower")) << missing.stdErr.toStdString();
    const StudioRun given = runStudio(
        {"--model", modelDir, "--vision-tower", dir + "/my-clip", "--screenshot", dir + "/given.png"});
    EXPECT_EQ(given.exitCode, 0) << given.stdErr.toStdString();
}
