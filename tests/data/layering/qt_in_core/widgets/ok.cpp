// Allowed: widgets may use Qt.
#include <QWidget>
