#Requires -Version 5.1
<#
.SYNOPSIS
    Writes a live kernel memory dump of the running VM (no crash, no reboot), or finds the one Task Manager wrote.

.DESCRIPTION
    The seed takes its dump with Task Manager (Windows 11), started as administrator:
    Details > right-click "System" > "Create live kernel memory dump file" > "Full
    live kernel memory dump".
    Task Manager writes it to %LOCALAPPDATA%\Microsoft\Windows\TaskManager\LiveKernelDumps
    and the dump reports bug check 0x161 (LIVE_SYSTEM_DUMP). That menu exists from
    Windows 11 22H2 build 22621.1992 on, per Microsoft's "Task Manager live memory dump" page.

    This script does the same from the command line with the Storage module, as
    Microsoft's "Kernel Live Dump Code Reference" page describes:

        Get-StorageSubSystem
        Get-StorageDiagnosticInfo -StorageSubSystemFriendlyName "<name>" -IncludeLiveDump -DestinationPath <folder>

    The dump lands under <folder>\localhost\ (LiveDump.dmp in Microsoft's example).
    This works on Windows 10 as well. By default the script passes
    -ExcludeOperationalLog and -ExcludeDiagnosticLog so that only the dump is
    collected; -IncludeLogs keeps the storage event logs too.

    With -FromTaskManager it changes nothing: it returns the newest .dmp in Task
    Manager's LiveKernelDumps folder, for piping into Invoke-DumpAnalysis.ps1.

    The dump is as large as the kernel memory in use (hundreds of MB to GB): the
    destination needs the room. A live dump may be partial: Microsoft's "Kernel Live
    Dump Code Reference" says that when a live dump cannot capture every page it
    takes the pages needed for a valid dump first, kernel pages before user pages,
    and that memory may then be missing from the file; its "Task Manager live memory
    dump" page adds that the capture needs enough free physical memory to hold a
    copy of what it writes (closing other programs first leaves it more). Nothing
    promises that the fast mutex or a thread this demo reads is among the pages
    kept: WrFastMutex.js says what it could not read, and Invoke-DumpAnalysis.ps1
    warns when its answer is incomplete. Task Manager's menu needs Task Manager
    running as an administrator (the same page, under troubleshooting), as this
    script needs an elevated PowerShell.

    The storage subsystem is passed to Get-StorageDiagnosticInfo as the object
    Get-StorageSubSystem returned (-InputObject), never matched by its friendly
    name, which is translated on non-English Windows ("Windows Storage on <computer>"
    in Microsoft's English example). A test VM has one subsystem; with several, the
    script lists them and asks for -StorageSubSystemFriendlyName.

.PARAMETER DestinationPath
    Folder for the dump. Default: C:\Dumps\TestDriver-<yyyyMMdd-HHmmss>. Must not exist yet or be empty.

.PARAMETER StorageSubSystemFriendlyName
    Storage subsystem to ask, by its FriendlyName as Get-StorageSubSystem prints it.
    Default: the only subsystem there is.

.PARAMETER IncludeLogs
    Also collect the storage operational and diagnostic logs.

.PARAMETER FromTaskManager
    Do not create a dump: return the newest dump Task Manager wrote.

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1
    Writes C:\Dumps\TestDriver-20231125-043101\localhost\LiveDump.dmp (for example) and returns its path.

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1 | .\scripts\Invoke-DumpAnalysis.ps1

.EXAMPLE
    PS C:\> .\scripts\New-LiveKernelDump.ps1 -FromTaskManager | .\scripts\Invoke-DumpAnalysis.ps1
    Analyses the dump made in Task Manager, as in the seed.
#>
[CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Storage')]
[OutputType([string])]
param(
    [Parameter(ParameterSetName = 'Storage')]
    [string]$DestinationPath = (Join-Path -Path 'C:\Dumps' -ChildPath ('TestDriver-' + (Get-Date -Format 'yyyyMMdd-HHmmss'))),

    [Parameter(ParameterSetName = 'Storage')]
    [string]$StorageSubSystemFriendlyName,

    [Parameter(ParameterSetName = 'Storage')]
    [switch]$IncludeLogs,

    [Parameter(ParameterSetName = 'TaskManager', Mandatory)]
    [switch]$FromTaskManager
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

function Write-DumpFound {
    param([IO.FileInfo]$File)
    $mb = [math]::Round($File.Length / 1048576, 1)
    Write-Host "Dump: $($File.FullName) ($mb MB, written $($File.LastWriteTime))"
    Write-Host "Next: .\scripts\Invoke-DumpAnalysis.ps1 -DumpPath '$($File.FullName)'"
}

Assert-Administrator

if ($FromTaskManager) {
    $folder = Join-Path -Path $env:LOCALAPPDATA -ChildPath 'Microsoft\Windows\TaskManager\LiveKernelDumps'
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
        throw ("$folder does not exist: no live kernel dump was made with Task Manager by this user. " +
            'Start Task Manager as administrator (Microsoft: it must run as an Administrator level user), then ' +
            'Details > right-click System > Create live kernel memory dump file > Full live kernel memory dump.')
    }
    $newest = Get-ChildItem -LiteralPath $folder -Filter '*.dmp' -File -Recurse |
        Sort-Object -Property LastWriteTime -Descending | Select-Object -First 1
    if (-not $newest) {
        throw "No .dmp file in $folder."
    }
    Write-DumpFound -File $newest
    return $newest.FullName
}

if (-not (Get-Command -Name Get-StorageDiagnosticInfo -ErrorAction SilentlyContinue)) {
    throw ('Get-StorageDiagnosticInfo (Storage module) is not available on this Windows. ' +
        'Use Task Manager instead and then -FromTaskManager.')
}

if ($StorageSubSystemFriendlyName) {
    $subsystem = @(Get-StorageSubSystem -FriendlyName $StorageSubSystemFriendlyName)
    if ($subsystem.Count -ne 1) {
        throw "Get-StorageSubSystem -FriendlyName '$StorageSubSystemFriendlyName' found $($subsystem.Count) subsystem(s), not one."
    }
    $subsystem = $subsystem[0]
}
else {
    $all = @(Get-StorageSubSystem)
    if ($all.Count -ne 1) {
        $names = ($all | ForEach-Object { "'$($_.FriendlyName)'" }) -join ', '
        throw ("Get-StorageSubSystem lists $($all.Count) storage subsystem(s) ($names): " +
            'pass the one to use with -StorageSubSystemFriendlyName.')
    }
    $subsystem = $all[0]
}
Write-Host "Storage subsystem: $($subsystem.FriendlyName)"

if (Test-Path -LiteralPath $DestinationPath) {
    if (@(Get-ChildItem -LiteralPath $DestinationPath -Force).Count -gt 0) {
        throw "$DestinationPath exists and is not empty: choose a new -DestinationPath."
    }
}

$arguments = @{
    InputObject     = $subsystem
    IncludeLiveDump = $true
    DestinationPath = $DestinationPath
}
if (-not $IncludeLogs) {
    $arguments['ExcludeOperationalLog'] = $true
    $arguments['ExcludeDiagnosticLog'] = $true
}

if (-not $PSCmdlet.ShouldProcess($DestinationPath, 'Get-StorageDiagnosticInfo -IncludeLiveDump (live kernel memory dump)')) {
    return
}
if (-not (Test-Path -LiteralPath $DestinationPath)) {
    New-Item -ItemType Directory -Path $DestinationPath | Out-Null
}
Write-Host 'Writing the live kernel dump; this takes a while and needs free memory ...'
Get-StorageDiagnosticInfo @arguments | Out-Null

$dump = Get-ChildItem -LiteralPath $DestinationPath -Filter '*.dmp' -File -Recurse |
    Sort-Object -Property LastWriteTime -Descending | Select-Object -First 1
if (-not $dump) {
    throw ("Get-StorageDiagnosticInfo finished but wrote no .dmp under $DestinationPath. " +
        'Live dumps are throttled and need free memory: wait a few minutes and retry, or use Task Manager.')
}
Write-DumpFound -File $dump
return $dump.FullName
