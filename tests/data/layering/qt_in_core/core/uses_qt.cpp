// Deliberate violation for the layering check test.
#include <QString>
