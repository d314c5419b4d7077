// sdrpn: the command-line twin of the studio.
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: sdrpn <command> [options]\n";
        return 2;
    }
    std::cerr << "sdrpn: unknown command '" << argv[1] << "'\n";
    return 2;
}
