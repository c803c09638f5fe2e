// Placeholder: replaced by the real hostmaintctl.
int main() { return 1; }
