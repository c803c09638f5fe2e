// Placeholder: replaced by the real daemon entry point.
int main() { return 1; }
