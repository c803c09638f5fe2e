/* The memory floor of a libvirt client, for bench/scale: what any daemon that
 * links libvirt's client library pays before doing anything of its own. It
 * does the least hostmaintd must: connects, registers for lifecycle and
 * metadata events, lists the domains and runs libvirt's event loop idle for
 * a few seconds. Prints its RSS (and the parts of it) as "key kB" lines, at
 * start (libraries loaded) and when idle.
 *
 * Usage: libvirt-floor URI [SECONDS]
 */
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                        void *opaque) {
  (void)conn, (void)dom, (void)event, (void)detail, (void)opaque;
  return 0;
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                        void *opaque) {
  (void)conn, (void)dom, (void)type, (void)nsuri, (void)opaque;
}

/* Wakes the event loop up so that the deadline is checked on a driver
 * (such as the test driver) that never has an event to deliver. */
static void on_tick(int timer, void *opaque) { (void)timer, (void)opaque; }

static void print_memory(const char *when) {
  FILE *status = fopen("/proc/self/status", "r");
  if (!status) {
    perror("/proc/self/status");
    exit(1);
  }
  char line[256];
  while (fgets(line, sizeof line, status)) {
    long kb = 0;
    char key[32];
    if (sscanf(line, "%31[^:]: %ld kB", key, &kb) == 2 &&
        (!strcmp(key, "VmRSS") || !strcmp(key, "RssAnon") || !strcmp(key, "RssFile")))
      printf("%s_%s %ld\n", when, key, kb);
  }
  fclose(status);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URI [SECONDS]\n", argv[0]);
    return 2;
  }
  const int seconds = argc > 2 ? atoi(argv[2]) : 3;
  print_memory("loaded");
  if (virEventRegisterDefaultImpl() < 0) return 1;
  virConnectPtr conn = virConnectOpen(argv[1]);
  if (!conn) {
    fprintf(stderr, "cannot connect to %s\n", argv[1]);
    return 1;
  }
  if (virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL) < 0 ||
      virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                       VIR_DOMAIN_EVENT_CALLBACK(on_metadata), NULL, NULL) < 0)
    return 1;
  virDomainPtr *domains = NULL;
  const int count = virConnectListAllDomains(conn, &domains, 0);
  if (count < 0) return 1;
  for (int i = 0; i < count; i++) virDomainFree(domains[i]);
  free(domains);
  if (virEventAddTimeout(500, on_tick, NULL, NULL) < 0) return 1;
  const time_t end = time(NULL) + seconds;
  while (time(NULL) < end)
    if (virEventRunDefaultImpl() < 0) return 1;
  printf("domains %d\n", count);
  print_memory("idle");
  virConnectClose(conn);
  return 0;
}
