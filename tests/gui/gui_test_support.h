// Shared by the gui test executables: one QApplication for the whole run (offscreen platform, QSettings in
// Qt's test location), created by a gtest global environment since GTest::gtest_main owns main(); and
// waits on signals, never on sleeps.
#pragma once

#include <QApplication>
#include <QCoreApplication>
#include <QSignalSpy>
#include <QStandardPaths>

#include <gtest/gtest.h>

#include "app/job_manager.h"

namespace sdrpn::test {

class QtEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("SD-RPN Studio"));
        QCoreApplication::setApplicationName(QStringLiteral("SD-RPN Studio Tests"));
        static int argc = 1;
        static char arg0[] = "sdrpn-gui-test";
        static char* argv[] = {arg0, nullptr};
        if (!QCoreApplication::instance()) m_app = new QApplication(argc, argv);
    }
    void TearDown() override {
        delete m_app;
        m_app = nullptr;
    }

private:
    QApplication* m_app = nullptr;
};

inline ::testing::Environment* const kQtEnvironment = ::testing::AddGlobalTestEnvironment(new QtEnvironment);

// Waits until the manager has no active job; false on timeout.
inline bool waitForIdle(JobManager* jobs, int timeoutMs = 60000) {
    if (jobs->activeCount() == 0) return true;
    QSignalSpy spy(jobs, &JobManager::allJobsFinished);
    return spy.wait(timeoutMs) || jobs->activeCount() == 0;
}

}  // namespace sdrpn::test
