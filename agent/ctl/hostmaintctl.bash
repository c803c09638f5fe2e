# bash completion for hostmaintctl (docs/hostmaintctl.md).
# Installed as /usr/share/bash-completion/completions/hostmaintctl, where
# bash-completion loads it the first time hostmaintctl is completed. Needs
# nothing but bash: domain names come from `hostmaintctl status --json`, read
# with jq or python3 when one is installed, else with sed.

# The names of the domains on the host, one per line; nothing when hostmaintd
# cannot be reached. $1: the hostmaintctl being completed, $2: its --address.
_hostmaintctl_domains() {
    local json
    local -a command=("$1")
    [[ -n $2 ]] && command+=(--address "$2")
    json=$("${command[@]}" status --json 2>/dev/null) || return 0
    if command -v jq >/dev/null 2>&1; then
        jq -r '.domains[].name' <<<"$json" 2>/dev/null
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json, sys
for domain in json.load(sys.stdin)["domains"]: print(domain["name"])' <<<"$json" 2>/dev/null
    else
        # The document is indented by two spaces a level: a domain's own keys
        # are at the third level (the notice's copy of the name is deeper).
        sed -n 's/^      "name": "\(.*\)",\{0,1\}$/\1/p' <<<"$json"
    fi
}

_hostmaintctl() {
    local cur prev words cword
    if declare -F _get_comp_words_by_ref >/dev/null; then
        # bash-completion: words are not split at '=' and ':' (--address=unix:path=...).
        _get_comp_words_by_ref -n =: cur prev words cword
    else
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
        cur=${words[cword]} prev=${words[cword - 1]}
    fi
    local verbs="status notices schedule reschedule cancel ack begin finish wait allow disallow host-shutdown fleet"
    local program=${words[0]} address="" verb="" i word
    local -a positionals=() used=()
    COMPREPLY=()

    # What is on the line before the word being completed: the global
    # --address, the verb, the verb's positional arguments and options.
    for ((i = 1; i < cword; i++)); do
        word=${words[i]}
        case $word in
            --address | --start | --end | --reason | --phase | --timeout | --config | --hosts | --max-concurrent | --window)
                used+=("$word")
                ((i + 1 < cword)) && [[ $word == --address ]] && address=${words[i + 1]}
                ((i++))
                ;;
            --address=*)
                used+=(--address)
                address=${word#--address=}
                ;;
            -*) used+=("${word%%=*}") ;;
            *)
                if [[ -z $verb ]]; then verb=$word; else positionals+=("$word"); fi
                ;;
        esac
    done

    # The argument of an option.
    case $prev in
        --start | --end)
            COMPREPLY=($(compgen -W "now +15m +30m +1h +2h +4h +1d" -- "$cur"))
            return 0
            ;;
        --phase)
            COMPREPLY=($(compgen -W "idle scheduled draining empty in-maintenance restoring" -- "$cur"))
            return 0
            ;;
        --config)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --window)
            COMPREPLY=($(compgen -W "now/+8h now/+1d" -- "$cur"))
            return 0
            ;;
        --address | --reason | --timeout | --hosts | --max-concurrent)
            return 0
            ;;
    esac

    local options
    case $verb in
        "") options="--address --help --version" ;;
        status | notices) options="--json --help" ;;
        schedule) options="--start --end --removal --reason --help" ;;
        reschedule) options="--start --end --reason --help" ;;
        ack | allow) options="--reason --help" ;;
        host-shutdown) options="--only-when-system-stops --no-wait --timeout --help" ;;
        wait) options="--ready --phase --timeout --help" ;;
        fleet)
            case ${positionals[0]-} in
                status) options="--json --config --help" ;;
                schedule) options="--hosts --all --max-concurrent --window --reason --config --help" ;;
                *) options="--config --help" ;;
            esac
            ;;
        *) options="--help" ;;
    esac
    # Each option once.
    local option remaining=""
    for option in $options; do
        [[ " ${used[*]} " == *" $option "* ]] || remaining+=" $option"
    done

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$remaining" -- "$cur"))
        return 0
    fi
    case $verb in
        "")
            COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
            ;;
        fleet)
            ((${#positionals[@]} == 0)) && COMPREPLY=($(compgen -W "status schedule" -- "$cur"))
            ;;
        allow | disallow)
            if ((${#positionals[@]} == 0)); then
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(_hostmaintctl_domains "$program" "$address")" -- "$cur"))
            fi
            ;;
        ack)
            if ((${#positionals[@]} == 0)); then
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(_hostmaintctl_domains "$program" "$address")" -- "$cur"))
            elif ((${#positionals[@]} == 1)); then
                COMPREPLY=($(compgen -W "move keep" -- "$cur"))
            fi
            ;;
    esac
    return 0
}

complete -F _hostmaintctl hostmaintctl
