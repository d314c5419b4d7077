// sdrpn-studio: the desktop studio. Usage in app/studio_launcher.h.
#include <QApplication>

#include "app/studio_launcher.h"
#include "core/host_memory.h"

int main(int argc, char** argv) {
    sdrpn::keepHostMemory();
    QApplication app(argc, argv);
    configureStudioApplication(app);
    const StudioOptions options = parseStudioOptions(app);
    return runStudio(app, options);
}
