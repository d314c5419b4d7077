// Images between files, Qt and the core: decoding for the view (on a worker thread) and conversion to the
// core's plain ImageRgb8 for the model (a pasted image has no file the core could read).
//
// Thread affinity: none; QImage is reentrant, so these run on JobManager workers.
#pragma once

#include <QImage>
#include <QString>

#include "core/io/image.h"
#include "core/jobs.h"
#include "core/result.h"

// Decodes an image file (EXIF orientation applied). A missing, empty, corrupt or oversized file gives a
// failed Result whose message names the file.
sdrpn::Result<QImage> readImageFile(const QString& path, sdrpn::JobContext& ctx);

// Converts to 8-bit RGB (alpha dropped) and back.
sdrpn::io::ImageRgb8 toImageRgb8(const QImage& image);
QImage toQImage(const sdrpn::io::ImageRgb8& image);
