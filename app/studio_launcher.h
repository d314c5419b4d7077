// The sdrpn-studio command line:
//   sdrpn-studio [--model DIR] [--vision-tower DIR] [--device cpu|cuda[:N]] [--dtype fp32|bf16|fp16]
//                [--image FILE] [--question TEXT] [--max-new-tokens N] [--rpn DIR | --rpn-k K --rpn-t T]
//                [--sdrpn] [--session-file FILE] [--screenshot FILE]
//
// Models load on the first CUDA device in bf16 when there is one, else on the CPU in fp32; --device and
// --dtype choose otherwise. --vision-tower names the CLIP folder of an original-layout LLaVA given with
// --model (otherwise the studio asks for it when it is not beside the model).
//
// The RPN, once the model has loaded: --rpn DIR an SD-RPN checkpoint (a folder, or a .safetensors written by
// `sdrpn train`), --rpn-k K --rpn-t T an untrained twig from backbone layers K .. K+T-1 ("twiginit"); a
// model folder that is an SD-RPN checkpoint brings its own. A loaded RPN turns the SD-RPN switch on;
// --sdrpn asks for it, and it is an error when no RPN is there to ask with.
//
// With --screenshot the window opens what it was given, waits in the event loop until every job (model
// load, image decode, RPN load) has finished, then, given a question, asks it and waits for the answer
// (streamed answer, time per stage, attention overlay and layer strip; with SD-RPN the RoI answer beside the
// baseline and the RoI view), renders itself with QWidget::grab() to FILE and exits: 0 when all went well,
// 1 when something failed (the picture is still written; the messages go to stderr), 2 when the picture
// could not be written or an option is wrong. QSettings are neither read nor written in that mode, so the
// picture does not depend on the user's saved layout, and nothing is asked (a missing CLIP folder is a
// failure). Works with QT_QPA_PLATFORM=offscreen and under Xvfb.
#pragma once

#include <QSize>
#include <QString>

class QApplication;

struct StudioOptions {
    QString modelFolder;
    QString visionTower;  // the CLIP folder for modelFolder (original LLaVA layout)
    QString baseModel;    // the base model for modelFolder (an unfilled SD-RPN checkpoint)
    QString device;       // empty: defaultStudioLoadOptions()
    QString dtype;
    QString imagePath;
    QString question;
    int maxNewTokens = 0;    // 0: the Ask panel's default
    QString rpnPath;         // SD-RPN checkpoint
    int rpnK = 0, rpnT = 0;  // twiginit (both set, or neither)
    bool sdrpn = false;      // ask with SD-RPN
    QString sessionPath;
    QString screenshotPath;
};

inline constexpr int kScreenshotTimeoutMs = 5 * 60 * 1000;  // watchdog for a job that never ends

// Organisation and application names (for QSettings), version, window icon.
void configureStudioApplication(QApplication& app);

// Parses the command line; prints usage and exits on --help, --version or a bad option (exit code 2, the
// message naming the option).
StudioOptions parseStudioOptions(const QApplication& app);

// Runs the studio window until it closes (or, with a screenshot path, until the picture is written).
int runStudio(QApplication& app, const StudioOptions& options);
