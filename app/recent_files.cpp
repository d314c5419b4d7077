#include "app/recent_files.h"

#include <QDir>
#include <QSettings>

RecentFiles::RecentFiles(QString settingsKey, bool persistent, int maxEntries)
    : m_key(std::move(settingsKey)), m_persistent(persistent), m_max(maxEntries) {
    if (m_persistent) m_entries = QSettings().value(m_key).toStringList().mid(0, m_max);
}

void RecentFiles::add(const QString& path) {
    const QString clean = QDir::cleanPath(path);
    m_entries.removeAll(clean);
    m_entries.prepend(clean);
    while (m_entries.size() > m_max) m_entries.removeLast();
    save();
}

void RecentFiles::remove(const QString& path) {
    m_entries.removeAll(QDir::cleanPath(path));
    save();
}

void RecentFiles::clear() {
    m_entries.clear();
    save();
}

void RecentFiles::save() const {
    if (m_persistent) QSettings().setValue(m_key, m_entries);
}
