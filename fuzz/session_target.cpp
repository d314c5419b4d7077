#include "fuzz/session_target.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include <unistd.h>

#include <QDir>
#include <QFile>

#include "app/session_file.h"

namespace sdrpn::fuzz {

namespace {

thread_local std::string t_refusal;

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "session: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

const QString& scratch() {
    static const QString dir = [] {
        const QString d = QDir::temp().filePath(QStringLiteral("sdrpn-fuzz-session-%1").arg(::getpid()));
        QDir().mkpath(d);
        return d;
    }();
    return dir;
}

void write(const QString& path, const char* data, std::size_t size) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) finding("cannot write " + path.toStdString());
    f.write(data, qint64(size));
}

// What the views do with loaded maps: every value of every layer, and every span's grid.
double touch(const StudioSession& s) {
    double sum = 0.0;
    if (s.maps) {
        const auto& m = s.maps->maps;
        for (std::size_t slot = 0; slot < m.layers.size(); ++slot)
            for (int h = 0; h < m.heads; ++h)
                for (std::size_t r = 0; r < m.rows.size(); ++r)
                    for (std::int64_t k = 0; k < m.imageKeys; ++k) sum += double(m.at(slot, h, r, k));
        for (const auto& span : m.imageSpans) sum += double(span.grid.cells());
    }
    if (s.roi)
        for (float v : s.roi->roiLogits) sum += double(v);
    return sum;
}

}  // namespace

const std::string& lastSessionRefusal() {
    return t_refusal;
}

int runSession(const std::uint8_t* data, std::size_t size) {
    t_refusal.clear();
    const std::string_view all(reinterpret_cast<const char*>(data), data ? size : 0);
    constexpr std::string_view kSplit = "\n--sidecar--\n";
    const std::size_t at = all.find(kSplit);
    const std::string_view json = all.substr(0, at);
    const QString path = scratch() + QStringLiteral("/s.json");
    const QString sidecar = scratch() + QStringLiteral("/s.maps.safetensors");
    write(path, json.data(), json.size());
    QFile::remove(sidecar);
    if (at != std::string_view::npos) {
        const std::string_view rest = all.substr(at + kSplit.size());
        write(sidecar, rest.data(), rest.size());
    }
    try {
        QString error;
        const auto session = loadSessionFile(path, &error);
        if (!session) {
            if (error.isEmpty()) finding("refused without a message");
            t_refusal = error.toStdString();
            return 0;
        }
        volatile double sink = touch(*session);
        (void)sink;
    } catch (const std::exception& e) {
        finding(std::string("an exception escaped: ") + e.what());
    } catch (...) {
        finding("an exception of unknown type escaped");
    }
    return 0;
}

}  // namespace sdrpn::fuzz
