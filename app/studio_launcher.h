// The sdrpn-studio command line:
//   sdrpn-studio [--model DIR] [--image FILE] [--question TEXT] [--session-file FILE] [--screenshot FILE]
//
// With --screenshot the window opens what it was given, waits in the event loop until every job (model
// load, image decode) has finished, renders itself with QWidget::grab() to FILE and exits: 0 when all went
// well, 1 when something failed (the picture is still written; the messages go to stderr), 2 when the
// picture could not be written. QSettings are neither read nor written in that mode, so the picture does
// not depend on the user's saved layout. Works with QT_QPA_PLATFORM=offscreen and under Xvfb.
#pragma once

#include <QSize>
#include <QString>

class QApplication;

struct StudioOptions {
    QString modelFolder;
    QString imagePath;
    QString question;
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
