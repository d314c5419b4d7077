// RecentFiles: a most-recent-first list of paths kept in QSettings under one key (e.g. "recent/models").
// With persistence off (tests, --screenshot) it lives in memory only.
//
// Thread affinity: GUI thread.
#pragma once

#include <QString>
#include <QStringList>

class RecentFiles {
public:
    explicit RecentFiles(QString settingsKey, bool persistent = true, int maxEntries = 10);

    QStringList entries() const { return m_entries; }
    void add(const QString& path);  // moves it to the front
    void remove(const QString& path);
    void clear();

private:
    void save() const;

    QString m_key;
    bool m_persistent;
    int m_max;
    QStringList m_entries;
};
