// Shared by the gui tests that drive a whole MainWindow: a window without QSettings, and one that has the
// tiny fixture model and its 640 × 480 image loaded.
#pragma once

#include <memory>
#include <string>

#include <QString>

#include <gtest/gtest.h>

#include "app/main_window.h"
#include "tests/gui/gui_test_support.h"
#include "tests/support/test_support.h"

namespace sdrpn::test {

inline QString qs(const std::string& s) {
    return QString::fromStdString(s);
}

// Tests never read or write the user's settings.
inline MainWindow::Options noSettings() {
    MainWindow::Options options;
    options.useSettings = false;
    return options;
}

// A shown window with the fixture model loaded and its 640 × 480 image open.
inline std::unique_ptr<MainWindow> readyWindow() {
    auto window = std::make_unique<MainWindow>(noSettings());
    window->resize(1400, 900);
    window->show();
    window->openModel(qs(fixturePath("tiny-llava-hf")));
    window->openImage(qs(fixturePath("tiny-llava-hf/image_640x480.png")));
    EXPECT_TRUE(waitForIdle(window->jobManager()));
    return window;
}

}  // namespace sdrpn::test
