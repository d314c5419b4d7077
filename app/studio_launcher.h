// The sdrpn-studio command line:
//   sdrpn-studio [--model DIR] [--device cpu|cuda[:N]] [--dtype fp32|bf16|fp16] [--image FILE]
//                [--question TEXT] [--max-new-tokens N] [--session-file FILE] [--screenshot FILE]
//
// Models load on the first CUDA device in bf16 when there is one, else on the CPU in fp32; --device and
// --dtype choose otherwise.
//
// With --screenshot the window opens what it was given, waits in the event loop until every job (model
// load, image decode) has finished, then, given a question, asks it and waits for the answer (streamed
// answer, time per stage, attention overlay and layer strip), renders itself with QWidget::grab() to FILE
// and exits: 0 when all went well, 1 when something failed (the picture is still written; the messages go
// to stderr), 2 when the picture could not be written. QSettings are neither read nor written in that mode,
// so the picture does not depend on the user's saved layout. Works with QT_QPA_PLATFORM=offscreen and under
// Xvfb.
#pragma once

#include <QSize>
#include <QString>

class QApplication;

struct StudioOptions {
    QString modelFolder;
    QString device;  // empty: defaultStudioLoadOptions()
    QString dtype;
    QString imagePath;
    QString question;
    int maxNewTokens = 0;  // 0: the Ask panel's default
    QString sessionPath;
    QString screenshotPath;
};

inline constexpr int kScreenshotTimeoutMs = 5 * 60 * 1000;  // watchdog for a job that never ends

// Organisation and application names (for QSettings), version, window icon.
void configureStudioApplication(QApplication& app);

// Parses the command line; prints usage and exits on --help, --version or a bad option.
StudioOptions parseStudioOptions(const QApplication& app);

// Runs the studio window until it closes (or, with a screenshot path, until the picture is written).
int runStudio(QApplication& app, const StudioOptions& options);
